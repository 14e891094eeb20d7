"""The two readers of OTLP/protobuf (the compiled one of the bytes, the generated classes) give the
same rows for any request, and the compiled one stands aside for what it does not read."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from logpipe.sources.otlp import mapping, wire

_KEYS = st.sampled_from(["service.name", "http.request.method", "http.method", "url.path", "http.route",
                         "http.response.status_code", "client.address", "user.id", "server.address", "k", "é"])
_SCALARS = st.one_of(st.none(), st.text(max_size=5).map(lambda t: AnyValue(string_value=t)),
                     st.booleans().map(lambda b: AnyValue(bool_value=b)),
                     st.integers(-(2 ** 63), 2 ** 63 - 1).map(lambda i: AnyValue(int_value=i)))
_ATTRIBUTES = st.lists(st.tuples(_KEYS, _SCALARS), max_size=4)


def _attributes(pairs) -> list[KeyValue]:
    return [KeyValue(key=key) if value is None else KeyValue(key=key, value=value) for key, value in pairs]


_RECORD = st.fixed_dictionaries({
    "time": st.sampled_from([0, 1_764_000_000_123_456_789]),
    "observed": st.sampled_from([0, 1_764_000_001_000_000_000]),
    "severity": st.integers(-3, 30), "severity_text": st.sampled_from(["", "warning", "Err"]), "body": _SCALARS,
    "trace": st.sampled_from([b"", bytes(range(16))]), "span": st.sampled_from([b"", b"\x01" * 8]),
    "event": st.sampled_from(["", "login"]), "attributes": _ATTRIBUTES})


def _request(resources) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for resource_attributes, scopes in resources:
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.extend(_attributes(resource_attributes))
        for (name, version, scope_attributes), records in scopes:
            scope_logs = resource_logs.scope_logs.add()
            scope_logs.scope.name, scope_logs.scope.version = name, version
            scope_logs.scope.attributes.extend(_attributes(scope_attributes))
            for r in records:
                record = scope_logs.log_records.add(time_unix_nano=r["time"], observed_time_unix_nano=r["observed"],
                                                    severity_number=r["severity"], severity_text=r["severity_text"],
                                                    trace_id=r["trace"], span_id=r["span"], event_name=r["event"])
                if r["body"] is not None:
                    record.body.CopyFrom(r["body"])
                record.attributes.extend(_attributes(r["attributes"]))
    return request


_SCOPE = st.tuples(st.sampled_from(["", "app"]), st.sampled_from(["", "1.2"]), _ATTRIBUTES)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_ATTRIBUTES, st.lists(st.tuples(_SCOPE, st.lists(_RECORD, max_size=4)), max_size=2)),
                max_size=3))
def test_the_compiled_reader_gives_the_generated_classes_rows(resources):
    body = _request(resources).SerializeToString()
    compiled = mapping._records_of_wire(body)
    assert compiled is not None
    expected = mapping.records_of(mapping.parse_request(body, False)).table
    assert compiled.table.schema == expected.schema
    assert compiled.table.to_pylist() == expected.to_pylist()


def test_what_the_compiled_reader_does_not_read_goes_to_the_generated_classes():
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=1_764_000_000_000_000_000)
    record.attributes.append(KeyValue(key="ratio", value=AnyValue(double_value=0.25)))
    body = request.SerializeToString()
    assert wire.scan(body) is None
    assert dict(mapping.records_of_body(body, False).table.column("attributes")[0].as_py())["ratio"] == "0.25"
    assert wire.scan(b"\x0a\xff") is None  # a length past the end
    bad_utf8 = b"\x0a\x0b\x12\x09\x12\x07\x2a\x05\x0a\x03\xff\xfe\xfd"  # a body string that is not UTF-8
    assert mapping._records_of_wire(bad_utf8) is None
