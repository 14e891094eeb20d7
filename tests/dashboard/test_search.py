"""The logs page's search API: exact rows for an id, words and phrases, filters, pages and live tail,
with every value bound and the read role required."""

from __future__ import annotations

import re
import time

import orjson
import pytest
from fastapi.testclient import TestClient

from logpipe.dashboard.search import LogSearch, terms_of
from logpipe.events import Provenance
from logpipe.gateway.app import create_store_app
from logpipe.processing.normalize import normalize_ndjson
from logpipe.warehouse.queries import in_database
from tests.conftest import bearer, registry_of


def _event(i: int, now: float, **fields) -> dict:
    return {"event_id": f"e-{i:03d}", "ts": now - 60 + i, "service": "checkout", "status": 200,
            "message": f"order {i} placed", "trace_id": f"t-{i:03d}", "user_id": f"u-{i % 3}", "host": "web-1",
            **fields}


@pytest.fixture
def client(store, tokens):
    now = time.time()
    events = [_event(i, now) for i in range(20)]
    events[7] |= {"status": 502, "level": "ERROR", "message": "Card DECLINED by the issuer", "host": "web-2"}
    events[9] |= {"status": 404, "message": "declined card: no such route"}
    store.insert("fact_log", normalize_ndjson(b"\n".join(orjson.dumps(e) for e in events), Provenance("http")).facts)
    app = create_store_app(store, lambda: {"status": "ok"}, registry_of(tokens))
    from logpipe.gateway.routers import dashboard

    app.include_router(dashboard.router)
    client = TestClient(app, headers=bearer(tokens["read"]))
    client.store, client.now = store, now
    return client


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    return [row[body["columns"].index("event_id")] for row in body["rows"]]


def test_a_trace_id_user_id_or_event_id_finds_exactly_its_rows(client):
    assert _ids(client.get("/api/logs", params={"trace_id": "t-007"})) == ["e-007"]
    assert _ids(client.get("/api/logs", params={"event_id": "e-012"})) == ["e-012"]
    assert _ids(client.get("/api/logs", params={"user_id": "u-1"})) == [f"e-{i:03d}" for i in (19, 16, 13, 10, 7, 4, 1)]
    row = client.get("/api/logs", params={"trace_id": "t-007"}).json()
    record = dict(zip(row["columns"], row["rows"][0], strict=True))
    assert (record["status"], record["level"], record["host"], record["source"]) == (502, "ERROR", "web-2", "http")


def test_words_match_in_any_order_and_case_and_a_phrase_only_as_written(client):
    assert _ids(client.get("/api/logs", params={"text": "declined card"})) == ["e-009", "e-007"]
    assert _ids(client.get("/api/logs", params={"text": '"card declined"'})) == ["e-007"]
    assert _ids(client.get("/api/logs", params={"text": '"declined card" route'})) == ["e-009"]
    assert terms_of('a "b c" "" d') == ["a", "b c", "d"]


def test_filters_narrow_to_the_rows_they_name(client):
    assert _ids(client.get("/api/logs", params={"status_class": 5})) == ["e-007"]
    assert _ids(client.get("/api/logs", params={"status_class": 4, "service": "checkout"})) == ["e-009"]
    assert _ids(client.get("/api/logs", params={"level": "ERROR", "host": "web-2"})) == ["e-007"]
    assert _ids(client.get("/api/logs", params={"host": "web-3"})) == []
    start = int((client.now - 60 + 15) * 1000)  # from event 15 on
    assert _ids(client.get("/api/logs", params={"from": start})) == [f"e-{i:03d}" for i in range(19, 14, -1)]


def test_pages_follow_one_another_newest_first_without_a_gap_or_a_repeat(client):
    seen, params = [], {"limit": 6}
    while True:
        body = client.get("/api/logs", params=params).json()
        seen += [row[body["columns"].index("event_id")] for row in body["rows"]]
        if body["next"] is None:
            break
        params = {"limit": 6, **body["next"]}
    assert seen == [f"e-{i:03d}" for i in range(19, -1, -1)]


def test_live_tail_returns_only_rows_inserted_after_its_cursor(client):
    first = client.get("/api/logs/tail").json()
    assert len(first["rows"]) == 20
    cursor = first["after_ingest"]
    assert client.get("/api/logs/tail", params={"after_ingest": cursor}).json()["rows"] == []
    time.sleep(0.01)
    late = _event(50, client.now) | {"event_id": "e-late", "ts": client.now}
    client.store.insert("fact_log", normalize_ndjson(orjson.dumps(late), Provenance("http")).facts)
    tail = client.get("/api/logs/tail", params={"after_ingest": cursor}).json()
    assert [row[tail["columns"].index("event_id")] for row in tail["rows"]] == ["e-late"]
    assert tail["after_ingest"] > cursor


def test_the_read_role_is_needed_and_bad_values_are_refused_or_harmless(client, tokens):
    assert client.get("/api/logs", headers={"Authorization": ""}).status_code == 401
    assert client.get("/api/logs", headers=bearer(tokens["ingest"])).status_code == 403
    for params in ({"service": "x' OR 1=1 --"}, {"level": "LOUD"}, {"status_class": 9}, {"limit": 0},
                   {"trace_id": "a\nb"}, {"from": 10, "to": 5}, {"text": " ".join(["w"] * 11)}):
        answer = client.get("/api/logs", params=params)
        assert answer.status_code == 422, params
    for hostile in ("x' OR 1=1 --", "') OR ('1'='1", "\\' OR 1 --", "%' --"):
        assert _ids(client.get("/api/logs", params={"trace_id": hostile})) == []
        assert _ids(client.get("/api/logs", params={"text": hostile})) == []
    assert client.get("/logs", headers={"Authorization": ""}).status_code == 401
    assert "<title>logpipe: logs</title>" in client.get("/logs").text


def test_a_search_is_validated_before_any_sql(client):
    with pytest.raises(ValueError, match="from must be before to"):
        LogSearch(5, 5)


def test_a_word_matches_whole_words_and_a_word_with_separators_as_written(client):
    assert _ids(client.get("/api/logs", params={"text": "declin"})) == []  # part of a word is not the word
    assert _ids(client.get("/api/logs", params={"text": "ISSUER"})) == ["e-007"]
    assert _ids(client.get("/api/logs", params={"text": "card:"})) == ["e-009"]  # its tokens, then as written
    assert _ids(client.get("/api/logs", params={"text": "--"})) == []


def test_pages_reach_back_through_the_slices_of_a_long_range_in_order(store, tokens):
    now = time.time()
    ages_s = [30, 200, 1000, 2000, 5000, 9000, 20000, 40000, 80000]  # past 15 minutes, an hour, four, sixteen
    events = [_event(i, now, ts=now - age, message=f"step {i} done") for i, age in enumerate(ages_s)]
    store.insert("fact_log", normalize_ndjson(b"\n".join(orjson.dumps(e) for e in events), Provenance("http")).facts)
    app = create_store_app(store, lambda: {"status": "ok"}, registry_of(tokens))
    from logpipe.gateway.routers import dashboard

    app.include_router(dashboard.router)
    client = TestClient(app, headers=bearer(tokens["read"]))
    day = {"from": int((now - 86_400) * 1000), "to": int(now * 1000) + 60_000}
    assert _ids(client.get("/api/logs", params=day)) == [f"e-{i:03d}" for i in range(9)]
    seen, params = [], {**day, "limit": 2}
    while True:
        body = client.get("/api/logs", params=params).json()
        seen += [row[body["columns"].index("event_id")] for row in body["rows"]]
        if body["next"] is None:
            break
        params = {**day, "limit": 2, **body["next"]}
    assert seen == [f"e-{i:03d}" for i in range(9)]
    search = LogSearch(day["from"], day["to"])
    widths = [end - start for start, end in search.slices()]
    assert widths[:3] == [900_000, 3_600_000, 14_400_000] and sum(widths) == day["to"] - day["from"]
    assert list(LogSearch(day["from"], day["to"], trace_id="t-1").slices()) == [(day["from"], day["to"])]


def _plan(store, search: LogSearch) -> str:
    return "\n".join(row[0] for row in store.query_rows(
        "EXPLAIN indexes = 1 " + in_database(search.page_sql(), store.database), search.parameters())[1])


def test_the_search_indexes_skip_the_granules_without_the_id_or_the_word(store):
    now = time.time()
    for part in range(4):  # a part each, so each holds its own granule
        lines = [orjson.dumps({"event_id": f"p{part}-{i}", "ts": now - 10, "service": "auth",
                               "trace_id": f"tr{part}-{i}", "user_id": f"user{part}",
                               "message": f"step {i} of batch{part}"}) for i in range(50)]
        store.insert("fact_log", normalize_ndjson(b"\n".join(lines), Provenance("http")).facts)
    window = (int((now - 60) * 1000), int((now + 60) * 1000))

    def granules_read(**filters: str) -> tuple[int, int]:
        skipped = re.findall(r"Granules: (\d+)/(\d+)", _plan(store, LogSearch(*window, **filters)).split("Skip", 1)[1])
        return int(skipped[-1][0]), int(skipped[0][1])

    assert granules_read(user_id="user3") == (1, 4)
    assert granules_read(event_id="p1-5") == (1, 4)
    assert granules_read(text="batch0") == (1, 4)
    assert granules_read(text="step")[0] == 4  # a word of every granule reads them all


def test_a_trace_lookup_reads_only_the_seconds_and_services_of_its_trace(store):
    now = time.time()
    for part in range(4):  # a part each, 30 s apart, so each holds its own granule
        lines = [orjson.dumps({"event_id": f"p{part}-{i}", "ts": now - 10 - 30 * part, "service": "auth",
                               "trace_id": f"tr{part}-{i}", "message": "step"}) for i in range(50)]
        store.insert("fact_log", normalize_ndjson(b"\n".join(lines), Provenance("http")).facts)
    spanning = [{"event_id": "s-1", "ts": now - 200, "service": "order", "trace_id": "tr-span"},
                {"event_id": "s-2", "ts": now - 5, "service": "payment", "trace_id": "tr-span"}]
    store.insert("fact_log", normalize_ndjson(b"\n".join(orjson.dumps(e) for e in spanning), Provenance("http")).facts)
    window = (int((now - 600) * 1000), int((now + 60) * 1000))

    def found(trace_id: str) -> list[str]:
        search = LogSearch(*window, trace_id=trace_id)
        rows = store.query_rows(in_database(search.page_sql(), store.database), search.parameters())[1]
        return sorted(row[0] for row in rows)

    assert found("tr2-7") == ["p2-7"]
    assert found("tr-span") == ["s-1", "s-2"]  # two services, 195 s apart
    assert found("tr-unknown") == []
    read = re.findall(r"Granules: (\d+)/(\d+)", _plan(store, LogSearch(*window, trace_id="tr2-7")).split(
        "ReadFromMergeTree (" + store.database + ".fact_log)", 1)[1])
    assert (int(read[-1][0]), int(read[0][1])) == (1, 5)  # of the granules of five parts


def test_the_benchmark_drops_exactly_the_indexes_the_schema_adds(store):
    from logpipe.warehouse.queries import SEARCH_INDEXES, SEARCH_VIEWS

    names = store.query_rows("SELECT name FROM system.data_skipping_indices WHERE database = {db:String} "
                             "AND table = 'fact_log' ORDER BY name", {"db": store.database})[1]
    assert [n for (n,) in names if n != "ingest_ts_minmax"] == sorted(SEARCH_INDEXES)
    feeding = store.query_rows("SELECT name FROM system.tables WHERE database = {db:String} AND engine = "
                               "'MaterializedView' AND position(create_table_query, "
                               "concat('TO ', {db:String}, '.fact_log_trace ')) > 0", {"db": store.database})[1]
    assert [n for (n,) in feeding] == list(SEARCH_VIEWS)
