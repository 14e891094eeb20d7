"""Who gets in: every route but /ping needs a token of the right role; the dashboard logs in by cookie."""

from __future__ import annotations

import json
import time
import uuid

import orjson
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from logpipe.apps.up import Pipeline
from logpipe.auth.config import AuthConfig
from logpipe.auth.tokens import Role, TokenRegistry, add_to_tokens_file
from logpipe.config import Settings
from logpipe.gateway.app import create_app
from logpipe.gateway.security import COOKIE
from tests.conftest import bearer

PATH_VALUES = {"panel_id": "eps", "table": "alerts", "asset": "app.js"}


@pytest.fixture(scope="module")
def gateway(store_dir, tmp_path_factory):
    """``logpipe up``'s app in this process, on the session's embedded store, with a tokens file."""
    tokens = {"ingest": "i-" + uuid.uuid4().hex, "read": "r-" + uuid.uuid4().hex, "admin": "a-" + uuid.uuid4().hex}
    tokens_file = tmp_path_factory.mktemp("auth") / "tokens.yaml"
    named = add_to_tokens_file(tokens_file, "checkout", Role.INGEST)
    database = f"sec_{uuid.uuid4().hex[:8]}"
    settings_ = Settings(data_dir=store_dir, clickhouse_database=database, sim_enabled=False, watch_enabled=False,
                         otlp_enabled=False, syslog_enabled=False,
                         flush_interval_s=0.2)
    pipeline = Pipeline(settings_)
    registry = TokenRegistry(AuthConfig(tokens=tokens, tokens_file=tokens_file))
    with TestClient(create_app(pipeline.services(), registry)) as client:
        yield client, {**tokens, "named": named}, pipeline
        pipeline.store.command(f"DROP DATABASE IF EXISTS {database}")


def _routes(routes: list, prefix: str = "") -> list[tuple[str, Route]]:
    """Every route with its full path, into the routers the app includes (FastAPI includes them lazily)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute | Route):
            found.append((prefix + route.path, route))
        elif hasattr(route, "original_router"):
            found += _routes(route.original_router.routes, prefix + route.include_context.prefix)
    return found


def _requests(app) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, path parameters filled in."""
    found = []
    for full_path, route in _routes(app.routes):
        path = full_path
        for name, value in PATH_VALUES.items():
            path = path.replace(f"{{{name}}}", value).replace(f"{{{name}:path}}", value)
        assert "{" not in path, f"no value for a parameter of {full_path}"
        found += [(method, path) for method in sorted(route.methods - {"HEAD"})]
    return found


def test_every_route_but_ping_answers_401_without_a_valid_token(gateway):
    client, _, _ = gateway
    served = _requests(client.app)
    assert ("GET", "/ping") in served and ("POST", "/v1/logs") in served and ("GET", "/openapi.json") in served
    assert len(served) >= 18
    for method, path in served:
        if path == "/ping":
            assert client.request(method, path).status_code == 200
            continue
        for headers in ({}, bearer("not-a-token"), {"Authorization": "Basic YWRtaW46YWRtaW4="},
                        {"Cookie": f"{COOKIE}=not-a-token"}):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.status_code)


def test_each_role_may_do_its_own_and_no_more(gateway):
    client, tokens, _ = gateway
    read, ingest, admin = bearer(tokens["read"]), bearer(tokens["ingest"]), bearer(tokens["admin"])
    line = orjson.dumps({"ts": time.time(), "service": "auth", "status": 200}) + b"\n"
    forged = b"FORGED: call +1-555-0100"
    # the read role reads, and neither ingests nor controls nor writes into the store
    assert client.get("/healthz", headers=read).status_code == 200
    assert client.get("/metrics", headers=read).status_code == 200
    assert client.get("/api/panels/eps", headers=read).status_code == 200
    assert client.post("/v1/query", content=b"SELECT 1", headers=read).status_code == 200
    assert client.post("/v1/logs", content=line, headers=read).status_code == 403
    assert client.put("/v1/simulator", json={"rate": 5_000_000}, headers=read).status_code == 403
    assert client.post("/v1/simulator/incidents", json={"type": "outage", "service": "auth"},
                       headers=read).status_code == 403
    assert client.put("/v1/processor", json={"running": False}, headers=read).status_code == 403
    assert client.post("/v1/warehouse/alerts", content=forged, headers=read).status_code == 403
    # the ingest role ingests, and reads nothing
    assert client.post("/v1/logs", content=line, headers=ingest).status_code == 200
    for path in ("/healthz", "/metrics", "/api/panels", "/openapi.json", "/v1/simulator"):
        assert client.get(path, headers=ingest).status_code == 403, path
    assert client.post("/v1/query", content=b"SELECT 1", headers=ingest).status_code == 403
    assert client.get("/", headers=ingest).status_code == 401
    # the admin role does everything
    assert client.get("/v1/processor", headers=admin).json() == {"running": True}
    assert client.put("/v1/simulator", json={"rate": 10}, headers=admin).json()["rate"] == 10
    assert client.post("/v1/query", content=b"SELECT 1", headers=admin).status_code == 200
    assert client.post("/v1/logs", content=line, headers=admin).status_code == 200
    rows = client.post("/v1/query", content=b"SELECT count() FROM alerts", headers=admin).json()["rows"]
    assert rows == [[0]]  # nothing forged got in


def test_the_dashboard_logs_in_once_by_its_address_and_then_by_an_httponly_cookie(gateway):
    client, tokens, _ = gateway
    anonymous = TestClient(client.app)
    page = anonymous.get("/")
    assert page.status_code == 401 and "needs a token" in page.text and "logpipe url" in page.text
    assert anonymous.get("/?token=wrong", follow_redirects=False).status_code == 401
    assert anonymous.get(f"/?token={tokens['ingest']}", follow_redirects=False).status_code == 401
    login = anonymous.get(f"/?token={tokens['read']}", follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={tokens['read']};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert anonymous.get("/").status_code == 200  # the cookie from here on
    assert anonymous.get("/static/app.js").status_code == 200
    assert anonymous.get("/api/panels").status_code == 200
    assert anonymous.post("/v1/logs", content=b"{}").status_code == 403  # a read cookie does not ingest


def test_a_named_token_is_recorded_as_each_rows_sender(gateway):
    client, tokens, pipeline = gateway
    run = uuid.uuid4().hex[:8]
    for token, n in ((tokens["named"], 3), (tokens["ingest"], 2)):
        body = b"".join(orjson.dumps({"event_id": f"{run}-{token[:4]}-{i}", "ts": time.time(), "service": "auth"})
                        + b"\n" for i in range(n))
        assert client.post("/v1/logs", content=body, headers=bearer(token)).json()["accepted"] == n
    rows = pipeline.store.query_rows(f"SELECT sender, count() FROM {pipeline.store.database}.fact_log "
                                     "WHERE startsWith(event_id, {run:String}) GROUP BY sender ORDER BY sender",
                                     {"run": run})[1]
    assert rows == [("", 2), ("checkout", 3)]


def test_authentication_can_be_turned_off_only_on_a_loopback_address():
    assert not Settings(auth_enabled=False, http_host="127.0.0.1").auth_enabled
    assert not Settings(auth_enabled=False, http_host="::1").auth_enabled
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            Settings(auth_enabled=False, http_host=host)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children,
                                                                                               max_size=3),
                           max_leaves=8)
FIELDS = st.sampled_from(["ts", "service", "status", "latency_ms", "bytes", "level", "kind", "event_id", "method",
                          "endpoint", "attributes", "x"])
EVENTS = st.dictionaries(FIELDS, JSON_VALUES, max_size=6)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.lists(EVENTS, max_size=5).map(lambda events: "\n".join(json.dumps(e) for e in events).encode()),
    st.lists(EVENTS, max_size=5).map(lambda events: json.dumps(events).encode()),
    EVENTS.map(lambda event: json.dumps(event).encode()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
@example(body=b'{"":[null,null]}')  # lists Arrow's JSON reader builds with a short child: once 503s
@example(body=b'{"status":[null,null]}')  # the same in a known field: once a 503
@example(body=b'{"":[[null,null]]}')  # and in a list of lists
@example(body=b'{"status":[null,false]}')  # any list that starts with null
def test_no_body_makes_ingest_answer_a_server_error(gateway, body):
    client, tokens, _ = gateway
    response = client.post("/v1/logs", content=body, headers=bearer(tokens["ingest"]))
    assert response.status_code in (200, 400, 413, 429), (body, response.status_code, response.text)
    if response.status_code == 200:
        result = response.json()
        assert result["accepted"] >= 0 and result["rejected"] >= 0 and len(result["errors"]) <= result["rejected"]


SQL_WORDS = st.sampled_from(["SELECT", "FROM", "WHERE", "fact_log", "alerts", "system.one", "numbers(3)", "file",
                             "('/etc/passwd')", "count()", "*", ",", "1", "'x'", "{p:String}", "UNION ALL", "INTO",
                             "OUTFILE", "FORMAT", "JSON", "SETTINGS", "readonly=0", ";", "(", ")", "WITH", "AS", "x",
                             "IN", "system.users", "url", "LIMIT", "--", "\\", "'"])
QUERIES = st.one_of(st.text(max_size=120), st.lists(SQL_WORDS, max_size=14).map(" ".join))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sql=QUERIES, parameters=st.none() | st.dictionaries(st.sampled_from(["p", "q"]), st.text(max_size=10)))
@example(sql="SELECT{A:A}", parameters=None)  # a placeholder of no type ClickHouse knows (UNKNOWN_TYPE), once a 503
def test_no_query_makes_the_query_api_answer_a_server_error(gateway, sql, parameters):
    client, tokens, _ = gateway
    body = {"sql": sql, "parameters": parameters}
    response = client.post("/v1/query", json=body, headers=bearer(tokens["read"]))
    assert response.status_code in (200, 400, 413, 429), (body, response.status_code, response.text)
