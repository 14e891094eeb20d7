"""The logs page's search, defined once: the filters a caller may set, validated, and the two queries
that read single rows of ``fact_log`` with them, every value bound by ClickHouse.

- ``PAGE``: newest first, ``limit`` rows older than a cursor (the last row shown: its ts and event_id);
- ``TAIL``: the rows inserted after a cursor (an ``ingest_ts``), oldest first, for live tail.

Free text is words and "quoted phrases"; each must occur in the message, in any case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from logpipe.dashboard.panels import check_window
from logpipe.events import FACT_FIELDS

COLUMNS = tuple(f.name for f in FACT_FIELDS if f.name not in ("topic", "partition", "offset"))
MAX_TERMS = 10
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
    "arrayAll(term -> positionCaseInsensitive(message, term) > 0, {terms:Array(String)})",
])
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM {{db}}.fact_log WHERE {_WHERE}"
PAGE = (f"{_SELECT} AND ({{before_ts:Int64}} = 0 OR (toUnixTimestamp64Milli(ts), event_id) < "
        "({before_ts:Int64}, {before_id:String})) ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt32}")
TAIL = (f"{_SELECT} AND toUnixTimestamp64Milli(ingest_ts) > {{after_ingest:Int64}} "
        "ORDER BY ingest_ts, ts, event_id LIMIT {limit:UInt32}")


def terms_of(text: str) -> list[str]:
    """``error "card declined"`` -> ["error", "card declined"]; empty phrases are dropped."""
    found = [phrase if phrase is not None and quoted else word
             for quoted, phrase, word in ((m.group(0).startswith('"'), m.group(1), m.group(2))
                                          for m in TERMS.finditer(text))]
    return [term for term in found if term]


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
        object.__setattr__(self, "terms", terms)

    def parameters(self, **extra: Any) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.init and f.name not in ("start_ms", "end_ms", "text")}
        return {**values, "from": datetime.fromtimestamp(self.start_ms / 1000, UTC),
                "to": datetime.fromtimestamp(self.end_ms / 1000, UTC), "terms": self.terms, **extra}
