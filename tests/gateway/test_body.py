"""The body's line count and longest line, and the Kafka gateway's split into records: exact for any
mix of empty, blank and indented lines (the fast paths must give what a plain strip gives)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe.gateway.body import content_lines, line_stats

LINE = st.one_of(st.just(b""), st.sampled_from([b" ", b"\t", b"\r", b"  \r"]),
                 st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")),
                 st.sampled_from([b'{"a":1}', b' {"a":2}', b'{"a":3}\r', b"\t{}"]))


def _body(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=30))
def test_line_stats_counts_the_lines_with_content_and_finds_the_longest(lines):
    count, longest, size = line_stats(_body(lines))
    assert count == sum(1 for line in lines if line.strip())
    assert size == max(len(line) for line in lines)
    assert len(lines[longest]) == size


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=30))
def test_the_gateway_keeps_every_line_with_content_as_it_came(lines):
    assert content_lines(_body(lines)) == [line for line in lines if line.strip()]
