from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class FileSourceConfig:
    """One file source: which files, how their lines become events, and where it starts.

    ``include``/``exclude`` are glob patterns (``**`` crosses directories). ``parser``: ``json`` (lines
    of logpipe's event JSON), ``nginx`` (nginx or Apache combined access logs, an optional
    ``$request_time`` after them) or ``plain`` (the line is the message, its level and leading time
    read from it). ``service`` names the events' service (``json`` lines name their own); empty: the
    parser's default (``nginx``), else the file's name without its extension. ``start_at``: where a
    file found at the first scan, with no checkpoint, is read from; files that appear later are read
    from their beginning. ``multiline_start``: a regular expression that begins a record; the lines
    until the next one (a stack trace) join it, and a record waits up to ``multiline_timeout_s`` for
    more. ``timezone`` is the zone of times written without one (default: this machine's)."""

    include: list[str]
    exclude: list[str] = field(default_factory=list)
    parser: Literal["json", "nginx", "plain"] = "plain"
    service: str = ""
    name: str = "files"
    start_at: Literal["beginning", "end"] = "beginning"
    multiline_start: str | None = None
    multiline_timeout_s: float = 1.0
    timezone: str | None = None
    poll_interval_s: float = 0.25
    chunk_bytes: int = 8 << 20
    fingerprint_bytes: int = 1024
