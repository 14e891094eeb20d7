"""RFC 5424 and RFC 3164 messages, as the RFCs' own examples and the senders people run write them."""

from __future__ import annotations

import time

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe.events import Provenance
from logpipe.processing.normalize import normalize_records
from logpipe.sources.syslog.parse import parse_messages

NOW_MS = int(time.time() * 1000)


def _parsed(*messages: bytes) -> list[dict]:
    return parse_messages(pa.array(messages, pa.binary()), received_ms=NOW_MS).table.to_pylist()


def test_rfc5424_fields_map_to_columns_and_attributes():
    [row] = _parsed(b'<165>1 2026-12-01T10:14:15.003+01:00 mymachine.example.com evntslog 8710 ID47 '
                    b'[exampleSDID@32473 iut="3" eventSource="App\\"lication"][examplePriority@32473 class="high"] '
                    b'\xef\xbb\xbfAn application event log entry')
    assert row["ts"] == "2026-12-01T10:14:15.003+01:00"
    assert (row["service"], row["host"], row["level"], row["kind"]) == ("evntslog", "mymachine.example.com", "INFO",
                                                                        "system")
    assert row["message"] == "An application event log entry"  # the BOM is RFC 5424's marker, not text
    assert dict(row["attributes"]) == {"facility": "local4", "severity": "notice", "procid": "8710", "msgid": "ID47",
                                       "exampleSDID@32473.iut": "3", "exampleSDID@32473.eventSource": 'App"lication',
                                       "examplePriority@32473.class": "high"}


def test_rfc5424_nil_values_and_no_message():
    [row] = _parsed(b"<34>1 - - - - - -")
    assert (row["service"], row["host"], row["level"], row["message"]) == ("syslog", None, "FATAL", "")
    assert dict(row["attributes"]) == {"facility": "auth", "severity": "crit"}
    assert row["ts"].endswith("Z")  # NILVALUE: the time it was received


def test_rfc3164_with_tag_pid_and_a_time_without_year():
    stamp = time.strftime("%b %e %H:%M:%S", time.localtime(NOW_MS / 1000 - 60))
    [row] = _parsed(f"<13>{stamp} web01 nginx[4242]: upstream timed out".encode())
    assert (row["service"], row["host"], row["message"]) == ("nginx", "web01", "upstream timed out")
    assert dict(row["attributes"]) == {"facility": "user", "severity": "notice", "procid": "4242"}
    expected = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(NOW_MS // 1000 - 60))
    assert row["ts"] == expected


def test_a_bare_pri_message_as_python_syslog_handler_sends_it():
    [tagged, untagged] = _parsed(b"<11>myapp: disk full", b"<14>just text")
    assert (tagged["service"], tagged["level"], tagged["message"]) == ("myapp", "ERROR", "disk full")
    assert (untagged["service"], untagged["message"]) == ("syslog", "just text")


def test_what_is_not_syslog_becomes_a_dead_letter_with_its_reason_and_text():
    messages = [b"<14>1 2026-12-01T10:00:00Z h app - - - fine", b"no pri here", b"<200>too high", b"<13>\xff\xfe",
                b"<14>1 2026-13-45T10:00:00Z h app - - - bad date"]
    records = parse_messages(pa.array(messages, pa.binary()), received_ms=NOW_MS)
    normalized = normalize_records(records, Provenance("syslog"))
    reasons = {bad.index: (bad.reason, bad.raw) for bad in normalized.dead_letters}
    assert reasons[1] == ("syslog: not a syslog message (no <PRI> at its start)", "no pri here")
    assert reasons[2] == ("syslog: PRI is more than 191", "<200>too high")
    assert reasons[3] == ("syslog: not valid UTF-8", "<13>\\xff\\xfe")
    assert reasons[4][0].startswith("ts: not a valid date and time")
    assert sorted(reasons) == [1, 2, 3, 4] and normalized.facts.num_rows == 1


def test_framing_refusals_are_dead_letters_too():
    records = parse_messages(pa.array([b"<14>fine", b"<14>cut"], pa.binary()), refused={1: "syslog: too long"})
    normalized = normalize_records(records, Provenance("syslog"))
    assert [(b.index, b.reason, b.raw) for b in normalized.dead_letters] == [(1, "syslog: too long", "<14>cut")]


_NAME = st.text(st.sampled_from('abz09@._-"\\'), min_size=1, max_size=6)
_VALUE = st.text(st.sampled_from('ab ="]\\é-'), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_NAME, st.lists(st.tuples(_NAME, _VALUE), max_size=3)), min_size=1, max_size=3),
       st.sampled_from([" ", "  "]))
def test_structured_data_split_as_columns_equals_reading_it_message_by_message(elements, gap):
    """The column-wise split of plain structured data gives what the per-message reader gives, for any
    ids, names and values (quotes, backslashes and brackets escaped as RFC 5424 has them)."""
    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

    def sd_id(name: str) -> str:
        return name.replace('"', "").replace("\\", "") or "x"

    sd = "".join(f"[{sd_id(i)}" + "".join(f'{gap}{sd_id(k)}="{escaped(v)}"' for k, v in params) + "]"
                 for i, params in elements)
    message = f"<14>1 - host app - - {sd} text".encode()
    [row] = _parsed(message)
    expected = [(f"{sd_id(i)}.{sd_id(k)}", v) for i, params in elements for k, v in params]
    assert [(k, v) for k, v in row["attributes"] if "." in k] == expected
