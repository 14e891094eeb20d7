"""The OTLP/HTTP logs receiver, fed by the real OpenTelemetry Python SDK and by hand-made requests."""

from __future__ import annotations

import gzip
import logging
import time
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse

from logpipe.apps.up import Pipeline
from logpipe.config import Settings
from logpipe.sources.otlp.config import OtlpConfig
from logpipe.sources.otlp.receiver import create_otlp_app
from tests.conftest import bearer, registry_of
from tests.kafka_support import wait_for


def _sdk_logger(endpoint: str, token: str, name: str):
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout",
                                                        "deployment.environment": "test"}))
    exporter = OTLPLogExporter(endpoint=endpoint, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger.addHandler(handler)
    return logger, provider, handler


def test_the_opentelemetry_sdk_logging_handler_lands_every_record_with_its_fields(logpipe_factory):
    from opentelemetry.sdk.trace import TracerProvider

    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_WATCH_ENABLED="false")
    name = f"otlp-{uuid.uuid4().hex[:8]}"
    logger, provider, handler = _sdk_logger(f"http://127.0.0.1:{lp.otlp_port}/v1/logs", lp.tokens["ingest"], name)
    tracer = TracerProvider().get_tracer("test")
    try:
        with tracer.start_as_current_span("pay") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            for i in range(40):
                logger.info("paid order %d", i, extra={"http.request.method": "POST", "http.route": "/v1/pay",
                                                        "http.response.status_code": 200, "user.id": f"u{i}",
                                                        "order": i})
        for i in range(5):
            logger.error("card declined %d", i, extra={"http.response.status_code": 502})
        logger.warning("slow downstream")
        assert provider.force_flush(10_000)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    where = f"source = 'otlp' AND service = 'checkout' AND attributes['scope.name'] = '{name}'"
    assert wait_for(lambda: lp.query(f"SELECT count() FROM analytics.fact_log WHERE {where}")[0][0] == 46, 30)
    rows = lp.query(f"SELECT level, count(), countIf(status = 200), countIf(method = 'POST'), countIf(endpoint = "
                    f"'/v1/pay') FROM analytics.fact_log WHERE {where} GROUP BY level ORDER BY level")
    assert rows == [["ERROR", 5, 0, 0, 0], ["INFO", 40, 40, 40, 40], ["WARN", 1, 0, 0, 0]]
    paid = lp.query(f"SELECT message, user_id, trace_id, attributes['order'], "
                    f"attributes['resource.deployment.environment'], length(attributes['span_id']), kind "
                    f"FROM analytics.fact_log WHERE {where} AND user_id = 'u7'")
    assert paid == [["paid order 7", "u7", trace_id, "7", "test", 16, "request"]]
    declined = lp.query(f"SELECT status, kind, trace_id FROM analytics.fact_log WHERE {where} AND level = 'ERROR' "
                        "LIMIT 1")
    assert declined == [[502, "request", ""]]
    # the receiver's own metrics
    metrics = httpx.get(f"{lp.base}/metrics", headers=lp.headers()).text
    assert 'logpipe_events_sent_total{component="otlp"} 46.0' in metrics


def test_without_the_ingest_token_an_exporter_gets_401_and_nothing_is_stored(logpipe_factory):
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_WATCH_ENABLED="false")
    url = f"http://127.0.0.1:{lp.otlp_port}/v1/logs"
    body = ExportLogsServiceRequest().SerializeToString()
    assert httpx.post(url, content=body, headers={"Content-Type": "application/x-protobuf"}).status_code == 401
    assert httpx.post(url, content=body, headers={"Content-Type": "application/x-protobuf",
                                                  **lp.headers("read")}).status_code == 403
    assert httpx.get(f"http://127.0.0.1:{lp.otlp_port}/ping").status_code == 200


def _json_request(records: list[dict], service: str = "billing") -> dict:
    return {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                              "scopeLogs": [{"scope": {"name": "hand"}, "logRecords": records}]}]}


@pytest.fixture
def receiver(store_dir, tokens):
    settings = Settings(data_dir=store_dir, clickhouse_database=f"otlp_{uuid.uuid4().hex[:8]}", sim_enabled=False,
                        watch_enabled=False, otlp_enabled=False, syslog_enabled=False, queue_max_events=1000,
                        flush_interval_s=0.2)
    pipeline = Pipeline(settings)
    pipeline.start()
    app = create_otlp_app(pipeline, OtlpConfig(max_body_bytes=64 << 10, ack_timeout_s=2), registry_of(tokens))
    with TestClient(app, headers=bearer(tokens["ingest"])) as client:
        yield client, pipeline
    pipeline.stop()


def test_otlp_json_and_gzip_protobuf_with_a_partial_success_for_the_refused_record(receiver):
    client, pipeline = receiver
    now_ns = time.time_ns()
    records = [{"timeUnixNano": str(now_ns), "severityNumber": 9, "body": {"stringValue": "fine"},
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"},
               {"timeUnixNano": "0", "observedTimeUnixNano": str(now_ns), "severityText": "warn",
                "body": {"kvlistValue": {"values": [{"key": "a", "value": {"intValue": "1"}}]}}},
               {"timeUnixNano": str(now_ns + 3600 * 10**9), "body": {"stringValue": "from the future"}}]
    response = client.post("/v1/logs", json=_json_request(records))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["partialSuccess"]["rejectedLogRecords"] == "1"
    assert "record 2: ts: further in the future" in answer["partialSuccess"]["errorMessage"]
    store = pipeline.store
    database = pipeline.settings.clickhouse_database
    rows = store.query_rows(f"SELECT message, level, trace_id, attributes['span_id'] FROM {database}.fact_log "
                       "WHERE source = 'otlp' ORDER BY message")[1]
    assert rows == [("fine", "INFO", "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"),
                    ('{"a":1}', "WARN", "", "")]
    dead = store.query_rows(f"SELECT source, reason FROM {database}.dead_letter")[1]
    assert len(dead) == 1 and dead[0][0] == "otlp" and dead[0][1].startswith("ts: further in the future")

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attribute = resource_logs.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", "billing"
    record = resource_logs.scope_logs.add().log_records.add()
    record.time_unix_nano, record.severity_number, record.body.string_value = now_ns, 17, "zipped"
    response = client.post("/v1/logs", content=gzip.compress(request.SerializeToString()),
                           headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert not ExportLogsServiceResponse.FromString(response.content).HasField("partial_success")
    assert store.query_rows(f"SELECT level FROM {database}.fact_log WHERE message = 'zipped'")[1] == [("ERROR",)]


def test_bad_bodies_get_4xx_and_a_full_pipeline_429_with_retry_after(receiver):
    client, pipeline = receiver
    protobuf = {"Content-Type": "application/x-protobuf"}
    assert client.post("/v1/logs", content=b"\xff\x00 not protobuf", headers=protobuf).status_code == 400
    json_body = {"Content-Type": "application/json"}
    assert client.post("/v1/logs", content=b"{not json", headers=json_body).status_code == 400
    assert client.post("/v1/logs", content=b"x" * (65 << 10), headers=protobuf).status_code == 413
    assert client.post("/v1/logs", content=b"x", headers={**protobuf, "Content-Encoding": "br"}).status_code == 415

    pipeline.processor.pause()
    now_ns = str(time.time_ns())
    body = _json_request([{"timeUnixNano": now_ns, "body": {"stringValue": "held"}}] * 600)
    statuses = []
    for _ in range(3):
        response = client.post("/v1/logs", json=body)
        statuses.append(response.status_code)
        if response.status_code in (429, 503):
            assert int(response.headers["retry-after"]) >= 1
    assert statuses[0] == 503 and 429 in statuses[1:]  # not durable in time, then refused at once
    pipeline.processor.resume()
    response = client.post("/v1/logs", json=_json_request([{"timeUnixNano": now_ns, "body": {"stringValue": "ok"}}]))
    assert response.status_code == 200 and "partialSuccess" not in response.json()
