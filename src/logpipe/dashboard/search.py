"""The logs page's search, defined once: the filters a caller may set, validated, and the two queries
that read single rows of ``fact_log`` with them, every value bound by ClickHouse.

- ``page_sql``: newest first, ``limit`` rows older than a cursor (the last row shown: its ts and event_id);
- ``tail_sql``: the rows inserted after a cursor (an ``ingest_ts``), oldest first, for live tail.

Free text is words and "quoted phrases", each in the message in any case. A word matches a whole word
of the message (its tokens: runs of ASCII letters and digits, or of any other non-ASCII characters, as
ClickHouse splits text), so that the token index on the message (sql/012) answers it; a phrase, or a
word holding other characters (``card-declined``), matches its tokens and then its exact text.

A page without an id to look up reads its range in slices from the end, 15 minutes and then four
times wider each, until the page is full: the newest rows of a day are found without reading the day.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from logpipe.dashboard.panels import check_window
from logpipe.events import FACT_FIELDS

COLUMNS = tuple(f.name for f in FACT_FIELDS if f.name not in ("topic", "partition", "offset"))
MAX_TERMS = 10
MAX_TOKENS = 32
TOKEN = re.compile(r"[0-9A-Za-z\u0080-\U0010ffff]+")
FIRST_SLICE_MS = 15 * 60_000
SLICE_GROWTH = 4
MAX_LIMIT = 500
TERMS = re.compile(r'"([^"]*)"|(\S+)')
IDENTIFIER = re.compile(r"[^\x00-\x1f\x7f]{0,256}")  # ids as ingest stores them: no control characters
LEVELS = ("", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
KINDS = ("", "request", "app_error", "system")

_WHERE = " AND ".join([
    "ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}",
    *(f"({{{name}:String}} = '' OR {name} = {{{name}:String}})"
      for name in ("service", "level", "host", "source", "kind", "endpoint", "trace_id", "user_id", "event_id")),
    "({status_class:UInt8} = 0 OR intDiv(status, 100) = {status_class:UInt8})",
])
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM {{db}}.fact_log WHERE {_WHERE}"
_PAGE_ORDER = (" AND ({before_ts:Int64} = 0 OR (toUnixTimestamp64Milli(ts), event_id) < "
               "({before_ts:Int64}, {before_id:String})) ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt32}")
# A trace_id lookup finds the trace's services and seconds in fact_log_trace (sql/077), sorted by the
# trace id's hash, and reads only that (service, ts) range of fact_log, which its sorting key points at.
# The bounds are cast to ts's type: chdb compared DateTime64 with a DateTime subquery's value wrongly.
# GLOBAL IN: on a cluster the set is built once, on the node that was asked, and sent to the shards.
_TRACE_SPAN = "".join(
    f" AND {condition} (SELECT {value} FROM {{db}}.fact_log_trace WHERE trace_hash = cityHash64({{trace_id:String}}))"
    for condition, value in (("service GLOBAL IN", "service"), ("ts >=", "toDateTime64(min(second), 3, 'UTC')"),
                             ("ts <", "toDateTime64(max(second) + 1, 3, 'UTC')")))
_TAIL_ORDER = (" AND toUnixTimestamp64Milli(ingest_ts) > {after_ingest:Int64} "
               "ORDER BY ingest_ts, ts, event_id LIMIT {limit:UInt32}")


def text_clause(tokens: int, phrases: int) -> str:
    """The free text's conditions for so many tokens and phrases, each a placeholder: hasToken on the
    expression the token index is built on, so that the index skips granules without the word."""
    return "".join([f" AND hasToken(lowerUTF8(message), lowerUTF8({{token{i}:String}}))" for i in range(tokens)]
                   + [f" AND positionCaseInsensitiveUTF8(message, {{phrase{i}:String}}) > 0" for i in range(phrases)])


def terms_of(text: str) -> list[str]:
    """``error "card declined"`` -> ["error", "card declined"]; empty phrases are dropped."""
    found = [phrase if phrase is not None and quoted else word
             for quoted, phrase, word in ((m.group(0).startswith('"'), m.group(1), m.group(2))
                                          for m in TERMS.finditer(text))]
    return [term for term in found if term]


def tokens_of(term: str) -> list[str]:
    return TOKEN.findall(term)


@dataclass(frozen=True)
class LogSearch:
    """One request of the logs page, validated; ``ValueError`` says what is wrong."""

    start_ms: int
    end_ms: int
    service: str = ""
    level: str = ""
    status_class: int = 0  # 2 for 2xx ... 5 for 5xx; 0 for all
    host: str = ""
    source: str = ""
    kind: str = ""
    endpoint: str = ""
    trace_id: str = ""
    user_id: str = ""
    event_id: str = ""
    text: str = ""
    before_ts: int = 0  # the cursor: the last row shown (its ts in epoch ms, and its event_id)
    before_id: str = ""
    limit: int = 100
    terms: list[str] = field(default_factory=list, init=False, compare=False)
    tokens: list[str] = field(default_factory=list, init=False, compare=False)
    phrases: list[str] = field(default_factory=list, init=False, compare=False)

    def __post_init__(self) -> None:
        check_window(self.start_ms, self.end_ms, {name: getattr(self, name) for name in ("service", "host", "source")})
        if self.level not in LEVELS:
            raise ValueError(f"level: one of {', '.join(LEVELS[1:])}, or empty")
        if self.kind not in KINDS:
            raise ValueError(f"kind: one of {', '.join(KINDS[1:])}, or empty")
        if self.status_class not in (0, 1, 2, 3, 4, 5):
            raise ValueError("status_class: 1 to 5 (1xx to 5xx), or 0 for all")
        for name in ("endpoint", "trace_id", "user_id", "event_id", "before_id"):
            if not IDENTIFIER.fullmatch(getattr(self, name)):
                raise ValueError(f"{name}: at most 256 characters, no control characters")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit: 1 to {MAX_LIMIT}")
        if len(self.text) > 1000:
            raise ValueError("text: at most 1,000 characters")
        terms = terms_of(self.text)
        if len(terms) > MAX_TERMS:
            raise ValueError(f"text: at most {MAX_TERMS} words and phrases")
        tokens = list(dict.fromkeys(token for term in terms for token in tokens_of(term)))
        if len(tokens) > MAX_TOKENS:
            raise ValueError(f"text: at most {MAX_TOKENS} words")
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "phrases", [term for term in terms if tokens_of(term) != [term]])

    def parameters(self, start_ms: int | None = None, end_ms: int | None = None, **extra: Any) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.init and f.name not in ("start_ms", "end_ms", "text")}
        start_ms = self.start_ms if start_ms is None else start_ms
        end_ms = self.end_ms if end_ms is None else end_ms
        return {**values, "from": datetime.fromtimestamp(start_ms / 1000, UTC),
                "to": datetime.fromtimestamp(end_ms / 1000, UTC),
                **{f"token{i}": token for i, token in enumerate(self.tokens)},
                **{f"phrase{i}": phrase for i, phrase in enumerate(self.phrases)}, **extra}

    def _conditions(self) -> str:
        return _SELECT + (_TRACE_SPAN if self.trace_id else "") + text_clause(len(self.tokens), len(self.phrases))

    def page_sql(self) -> str:
        return self._conditions() + _PAGE_ORDER

    def tail_sql(self) -> str:
        return self._conditions() + _TAIL_ORDER

    def slices(self) -> Iterator[tuple[int, int]]:
        """The (from, to) ranges a page reads, newest first: the whole range for an id lookup, which the
        trace table and the ids' indexes answer; else 15 minutes from the end (or the cursor), then each
        four times wider."""
        end = self.end_ms if not self.before_ts else min(self.end_ms, self.before_ts + 1)
        if self.trace_id or self.user_id or self.event_id:
            yield self.start_ms, end
            return
        width = FIRST_SLICE_MS
        while end > self.start_ms:
            start = max(self.start_ms, end - width)
            yield start, end
            end, width = start, width * SLICE_GROWTH

    def newest_first(self, run: Callable[[str, dict[str, Any]], list]) -> list:
        """The page: ``run(sql, parameters)`` over the slices until ``limit`` rows are found."""
        rows: list = []
        for start, end in self.slices():
            rows += run(self.page_sql(), self.parameters(start, end, limit=self.limit - len(rows)))
            if len(rows) >= self.limit:
                break
        return rows
