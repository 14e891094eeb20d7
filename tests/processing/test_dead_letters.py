"""Dead letters listed and replayed through the intake: a rule change or a corrected record lets them in,
each once; a replay cut short by a crash is finished once; only the admin role replays."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from logpipe.apps.up import Pipeline
from logpipe.config import Settings
from logpipe.gateway.app import create_app
from logpipe.sources.syslog.parse import parse_messages
from logpipe.warehouse.config import WarehouseConfig
from logpipe.warehouse.store import Store
from tests.conftest import bearer, registry_of, role_tokens


class Replayer:
    """``logpipe up`` in this process over one database, restartable, with a client per role."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.database = f"dlq_{uuid.uuid4().hex[:8]}"
        self.tokens = role_tokens()

    @contextmanager
    def running(self, **settings: object):
        values = {"data_dir": self.data_dir, "clickhouse_database": self.database, "sim_enabled": False,
                  "watch_enabled": False, "otlp_enabled": False, "syslog_enabled": False, "flush_interval_s": 0.2,
                  "dim_sync_s": 3600, **settings}
        pipeline = Pipeline(Settings(**values))
        with TestClient(create_app(pipeline.services(), registry_of(self.tokens))) as client:
            self.pipeline, self.client = pipeline, client
            yield self

    def call(self, method: str, path: str, role: str = "admin", **kwargs):
        return self.client.request(method, path, headers=bearer(self.tokens[role]) if role else {}, **kwargs)

    def post_events(self, *events: dict) -> dict:
        body = b"\n".join(orjson.dumps({"ts": time.time(), "service": "auth", "status": 200, **e}) for e in events)
        response = self.call("POST", "/v1/logs", "ingest", content=body)
        assert response.status_code == 200, response.text
        return response.json()

    def letters(self, state: str = "all", **params) -> list[dict]:
        response = self.call("GET", "/api/dead-letters", "read", params={"state": state, **params})
        assert response.status_code == 200, response.text
        return response.json()["letters"]

    def replay(self, **body) -> dict:
        response = self.call("POST", "/api/dead-letters/replay", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def stored(self, run: str) -> list[tuple]:
        return self.pipeline.store.query_rows(
            f"SELECT event_id, status, sender FROM {self.database}.fact_log WHERE startsWith(event_id, {{r:String}}) "
            "ORDER BY event_id", {"r": run})[1]


@pytest.fixture
def replayer(store_dir):
    replayer = Replayer(store_dir)
    yield replayer
    store = Store(WarehouseConfig(data_dir=store_dir, database=replayer.database))
    store.command(f"DROP DATABASE IF EXISTS {replayer.database}")
    store.close()


def test_after_a_rule_change_a_replay_stores_what_was_refused_and_never_twice(replayer):
    run = uuid.uuid4().hex[:8]
    with replayer.running(max_future_s=60) as r:
        answer = r.post_events({"event_id": f"{run}-ok"}, {"event_id": f"{run}-ahead", "ts": time.time() + 900})
        assert (answer["accepted"], answer["rejected"]) == (1, 1)
        (letter,) = r.letters("open")
        assert f"{run}-ahead" in letter["raw"] and "LOGPIPE_MAX_FUTURE_S" in letter["reason"]
        reasons = r.call("GET", "/api/dead-letters/reasons", "read").json()
        kind = "ts: further in the future than LOGPIPE_MAX_FUTURE_S allows"  # listed without the value it had
        assert letter["reason"].startswith(kind + " (got ")
        assert [(x["reason"], x["letters"], x["open"]) for x in reasons] == [(kind, 1, 1)]
        # the rule still refuses it: it fails again, and the new dead letter is the open one
        outcome = r.replay(reason=kind)
        assert (outcome["stored"], outcome["failed"]) == (0, 1)
        (again,) = r.letters("open")
        assert again["id"] != letter["id"] and again["raw"] == letter["raw"]
        assert r.letters("failed")[0]["id"] == letter["id"]
    with replayer.running(max_future_s=3600) as r:  # the rule changed, and the process restarted with it
        outcome = r.replay(reason=kind)
        assert (outcome["stored"], outcome["failed"], outcome["records"]) == (1, 0, 1)
        assert r.stored(run) == [(f"{run}-ahead", 200, "dlq-replay"), (f"{run}-ok", 200, "")]
        assert r.letters("open") == []
        assert r.replay(reason=kind)["records"] == 0  # nothing open is left of that reason
        assert r.replay(ids=[again["id"]])["not_open"] == [again["id"]]
        assert [x["state"] for x in r.letters()] == ["stored", "failed"]
        assert len(r.stored(run)) == 2


def test_a_corrected_record_is_replayed_in_place_of_its_raw_text_with_every_copy(replayer):
    run = uuid.uuid4().hex[:8]
    with replayer.running() as r:
        answer = r.post_events(*[{"event_id": f"{run}-bad", "status": "oops", "ts": 1796150000.5}] * 2)
        assert answer["rejected"] == 2
        (letter,) = r.letters("open")
        assert letter["copies"] == 2  # two rows alike in every column are one dead letter of two records
        fixed = letter["raw"].replace('"oops"', "503")
        for refused in ({"ids": [letter["id"]], "fixes": {letter["id"]: fixed + "\n" + fixed}},
                        {"ids": [letter["id"]], "fixes": {letter["id"]: "  "}}, {},
                        {"reason": "x", "fixes": {letter["id"]: fixed}}):
            response = r.call("POST", "/api/dead-letters/replay", json=refused)
            assert response.status_code == 400, (refused, response.text)
        assert r.call("POST", "/api/dead-letters/replay", json={"ids": ["not a number"]}).status_code == 422
        assert r.letters("open")[0]["id"] == letter["id"]  # a refused request changes nothing
        outcome = r.replay(ids=[letter["id"]], fixes={letter["id"]: fixed})
        assert (outcome["stored"], outcome["records"]) == (1, 2)
        assert r.stored(run) == [(f"{run}-bad", 503, "dlq-replay")] * 2
        (shown,) = r.letters("stored")
        assert shown["raw"] == letter["raw"]  # the dead letter keeps what came; the replay row keeps the fix
        assert r.pipeline.store.query_rows(
            f"SELECT raw FROM {r.database}.dead_letter_replay WHERE state = 'stored'")[1] == [(fixed,)]


def test_a_syslog_dead_letter_is_read_as_syslog_again_when_replayed(replayer):
    with replayer.running() as r:
        result = r.pipeline.submit(parse_messages(pa.array(["no priority here"])), 1, "syslog").result(30)
        assert result.rejected == 1
        (letter,) = r.letters("open")
        assert letter["source"] == "syslog" and "no <PRI>" in letter["reason"]
        fixed = "<11>1 2026-12-01T10:00:00Z web1 billing - - - disk full"
        outcome = r.replay(ids=[letter["id"]], fixes={letter["id"]: fixed})
        assert outcome["stored"] == 1
        assert r.pipeline.store.query_rows(
            f"SELECT service, host, level, kind, message, source FROM {r.database}.fact_log")[1] == [
            ("billing", "web1", "ERROR", "system", "disk full", "syslog")]


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


def test_a_replay_cut_short_by_a_crash_is_finished_by_the_next_with_each_record_once(replayer):
    run = uuid.uuid4().hex[:8]
    with replayer.running(max_future_s=60) as r:
        r.post_events(*[{"event_id": f"{run}-{i}", "ts": time.time() + 900} for i in range(3)])
        assert len({x["reason"] for x in r.letters("open")}) == 3  # each with the time it had
        reason = r.call("GET", "/api/dead-letters/reasons", "read").json()[0]["reason"]
    with replayer.running(max_future_s=3600) as r:
        dead_letters = r.client.app.state.services.dead_letters
        marked = dead_letters._mark

        def die_after_the_records_are_stored(letters, state, key, reasons=None):
            if state != "pending":
                raise Crash
            marked(letters, state, key, reasons)

        dead_letters._mark = die_after_the_records_are_stored
        with pytest.raises(Crash):
            dead_letters.replay(reason=reason)
        assert len(r.stored(run)) == 3
        assert [x["state"] for x in r.letters()] == ["pending"] * 3
    with replayer.running(max_future_s=3600) as r:  # restarted: the engine's memory of the key is gone
        outcome = r.replay(reason="no such reason")
        assert (outcome["finished_pending"], outcome["stored"], outcome["records"]) == (3, 3, 3)
        assert sorted(e for e, _, _ in r.stored(run)) == [f"{run}-{i}" for i in range(3)]  # each once
        assert [x["state"] for x in r.letters()] == ["stored"] * 3
        assert r.replay(reason=reason)["records"] == 0


def test_two_replays_at_once_take_each_dead_letter_once(replayer):
    run = uuid.uuid4().hex[:8]
    with replayer.running() as r:
        r.post_events(*[{"event_id": f"{run}-{i}", "status": "bad"} for i in range(20)])
        letters = r.letters("open")
        fixes = {x["id"]: x["raw"].replace('"bad"', "200") for x in letters}
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda _: r.replay(ids=list(fixes), fixes=fixes), range(2)))
        assert sorted((o["stored"], len(o["not_open"])) for o in outcomes) == [(0, 20), (20, 0)]
        assert len(r.stored(run)) == 20


def test_only_the_admin_role_replays_and_the_read_role_lists(replayer):
    with replayer.running() as r:
        assert r.call("GET", "/api/dead-letters", None).status_code == 401
        assert r.call("GET", "/api/dead-letters/reasons", "ingest").status_code == 403
        assert r.call("GET", "/api/dead-letters", "read").status_code == 200
        assert r.call("GET", "/dead-letters", None).status_code == 401
        for role, status in ((None, 401), ("ingest", 403), ("read", 403)):
            assert r.call("POST", "/api/dead-letters/replay", role, json={"reason": "x"}).status_code == status
        assert r.call("POST", "/api/dead-letters/replay", json={"reason": "x"}).json()["records"] == 0
        assert r.call("GET", "/api/dead-letters", "read", params={"state": "lost"}).status_code == 400
        too_big = b'{"reason": "' + b"x" * (9 << 20) + b'"}'
        assert r.call("POST", "/api/dead-letters/replay", content=too_big).status_code == 413
