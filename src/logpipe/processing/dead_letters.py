"""Dead letters as a source: list them, and replay them through the intake, the path every other source
takes, so a replay is validated by the rules the engine runs now.

A replay takes open dead letters (never replayed, or whose replay was cut short), selected by id or all
of one reason, optionally with a corrected text for some. Each source's letters are one request to the
intake, with an idempotency key made of their ids and texts:

1. a ``pending`` row per dead letter goes to ``dead_letter_replay``, with the text and the key;
2. the records go to the intake, which answers once they are durable (or dead-lettered again);
3. a ``stored`` or ``failed`` row per dead letter: a letter with an outcome is never replayed again.

A crash between 1 and 3 leaves ``pending`` rows; the next replay first sends those again, with the same
key and text. The embedded engine stores a keyed request once across restarts (its insert token), so
nothing is stored twice; with Kafka, as for any keyed request, delivery across such a crash is at
least once. Text is replayed as a logpipe JSON event, a line of NDJSON, except a dead letter of a
source whose parser the process hands in (syslog: its messages are read as syslog messages again); a
line of a text log format (nginx, plain) passes once it is corrected to a JSON event.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from logpipe.events import DEAD_LETTER_REPLAY_SCHEMA, TS_TYPE
from logpipe.transport.intake import IngestResult, Intake, Records
from logpipe.warehouse import queries
from logpipe.warehouse.base import Warehouse

SENDER = "dlq-replay"  # the sender recorded with replayed rows, and part of the idempotency key
MAX_PER_REPLAY = 10_000  # dead letters one call replays; the rest stay open for the next
MAX_PER_REQUEST = 1_000  # dead letters one intake request carries
MAX_FIXED_BYTES = 1 << 20
STATES = {"all": "all", "open": "", "pending": "pending", "stored": "stored", "failed": "failed"}
_WHOLE_RETENTION = (1, 32503680000000)  # epoch ms: every dead letter, whatever its age
Parser = Callable[[pa.Array], Records]  # a source's texts (a string array) to its records


class ReplayRefused(ValueError):
    """A replay request that names nothing, or a fix that is not one record: a client's mistake."""


@dataclass
class Letter:
    id: int
    source: str
    raw: str
    copies: int


@dataclass
class ReplayOutcome:
    """What one replay did: ``stored`` and ``failed`` count dead letters (and their copies, as records),
    ``failed`` with each one's new reason; ``finished`` those of a replay a crash had cut short."""

    stored: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    finished: int = 0
    records: int = 0
    unsent: list[dict[str, str]] = field(default_factory=list)  # still open: no record to send as they are
    not_open: list[str] = field(default_factory=list)  # ids asked for that have an outcome already, or none
    remaining: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"stored": self.stored, "failed": len(self.failed), "errors": self.failed[:100],
                "unsent": self.unsent[:100], "not_open": self.not_open[:100], "finished_pending": self.finished,
                "records": self.records, "more": self.remaining}


def _window(start_ms: int | None, end_ms: int | None) -> dict[str, datetime]:
    start_ms = _WHOLE_RETENTION[0] if start_ms is None else start_ms
    end_ms = _WHOLE_RETENTION[1] if end_ms is None else end_ms
    if not 0 < start_ms < end_ms:
        raise ReplayRefused("from must be before to (epoch milliseconds)")
    return {"from": datetime.fromtimestamp(start_ms / 1000, UTC), "to": datetime.fromtimestamp(end_ms / 1000, UTC)}


def _ms(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000)
    return None


class DeadLetters:
    """The dead letters of one store, and their replay into one intake. Replays run one at a time in a
    process, so two calls never both take the same open letter."""

    def __init__(self, store: Warehouse, intake: Intake, ack_timeout_s: float = 30.0,
                 parsers: dict[str, Parser] | None = None):
        self.store = store
        self.intake = intake
        self.ack_timeout_s = ack_timeout_s
        self.parsers = dict(parsers or {})  # by source; the others' texts are JSON events
        self._lock = threading.Lock()

    # reading -------------------------------------------------------------------------------------
    def reasons(self, start_ms: int | None = None, end_ms: int | None = None, limit: int = 200) -> list[dict]:
        rows = self._rows(queries.DEAD_LETTER_REASONS, {**_window(start_ms, end_ms), "reason": "", "limit": limit})
        return [{"reason": reason, "letters": int(letters), "open": int(open_), "last_ms": _ms(last)}
                for reason, letters, open_, last in rows]

    def page(self, reason: str = "", state: str = "all", start_ms: int | None = None, end_ms: int | None = None,
             before_ts: int = 0, before_id: int = 0, limit: int = 100) -> dict[str, Any]:
        """Newest first; ``next`` is the cursor of the following page (None at the end)."""
        if state not in STATES:
            raise ReplayRefused(f"state: one of {', '.join(STATES)}")
        rows = self._rows(queries.DEAD_LETTER_PAGE, {
            **_window(start_ms, end_ms), "reason": reason, "state": STATES[state], "before_ts": before_ts,
            "before_id": before_id, "limit": limit})
        letters = [{"id": id_, "ingest_ms": _ms(ingest), "source": source, "topic": topic, "partition": partition,
                    "offset": offset, "reason": why, "raw": raw, "copies": int(copies),
                    "state": outcome or "open", "replay_reason": outcome_reason,
                    "replayed_ms": _ms(outcome_ts) if outcome else None}
                   for (id_, ingest, source, topic, partition, offset, why, raw, copies, outcome, outcome_reason,
                        outcome_ts) in rows]
        cursor = ({"before_ts": letters[-1]["ingest_ms"], "before_id": letters[-1]["id"]}
                  if len(letters) == limit else None)
        return {"letters": letters, "next": cursor}

    def _rows(self, sql: str, parameters: dict[str, Any]) -> list[tuple]:
        return self.store.query_rows(queries.in_database(sql, self.store.database), parameters)[1]

    # replay --------------------------------------------------------------------------------------
    def replay(self, ids: Iterable[int] = (), reason: str = "", fixes: dict[int, str] | None = None,
               start_ms: int | None = None, end_ms: int | None = None) -> ReplayOutcome:
        """Replay the open dead letters of ``ids``, or (with no ids) all of ``reason`` in the window,
        with ``fixes`` (id -> corrected text) in place of their raw text. Raises ``ReplayRefused``
        before anything is sent when the request is wrong, and the intake's ``Overloaded`` or
        ``ShuttingDown`` when it cannot take the records now: what was not sent stays open."""
        ids = sorted({int(i) for i in ids})
        fixes = dict(fixes or {})
        if not ids and not reason:
            raise ReplayRefused("name the dead letters to replay: their ids, or a reason")
        if set(fixes) - set(ids):
            raise ReplayRefused("a corrected text is for a dead letter named by its id")
        window = _window(start_ms, end_ms) if not ids else _window(None, None)
        outcome = ReplayOutcome()
        with self._lock:
            self._finish_pending(outcome)
            rows = self._rows(queries.DEAD_LETTERS_TO_REPLAY, {
                **window, "reason": "" if ids else reason, "ids": ids, "limit": MAX_PER_REPLAY + 1})
            outcome.remaining = len(rows) > MAX_PER_REPLAY
            letters = [Letter(int(id_), source, fixes.get(int(id_), raw), int(copies))
                       for id_, source, raw, copies in rows[:MAX_PER_REPLAY]]
            for letter in letters:
                _check_fix(letter, fixes, letter.source in self.parsers)
            found = {letter.id for letter in letters}
            outcome.not_open = [str(i) for i in ids if i not in found]
            by_source: dict[str, list[Letter]] = {}
            for letter in letters:
                problem = _unsendable(letter, letter.source in self.parsers)
                if problem:
                    outcome.unsent.append({"id": str(letter.id), "reason": problem})
                else:
                    by_source.setdefault(letter.source, []).append(letter)
            for source, group in by_source.items():
                for start in range(0, len(group), MAX_PER_REQUEST):
                    chunk = group[start:start + MAX_PER_REQUEST]
                    key = _key(chunk)
                    self._mark(chunk, "pending", key)
                    self._send(source, chunk, key, outcome)
        return outcome

    def _finish_pending(self, outcome: ReplayOutcome) -> None:
        pending: dict[tuple[str, str], list[Letter]] = {}
        for id_, key, source, raw, copies in self._rows(queries.PENDING_REPLAYS, {}):
            pending.setdefault((key, source), []).append(Letter(int(id_), source, raw, int(copies)))
        for (key, source), chunk in pending.items():
            before = outcome.stored + len(outcome.failed)
            self._send(source, chunk, key, outcome)
            outcome.finished += outcome.stored + len(outcome.failed) - before

    def _send(self, source: str, chunk: list[Letter], key: str, outcome: ReplayOutcome) -> None:
        owners = [letter for letter in chunk for _ in range(letter.copies)]
        texts = [letter.raw for letter in owners]
        parser = self.parsers.get(source)
        if parser is not None:
            payload: bytes | Records = parser(pa.array(texts, pa.string()))
        else:
            payload = "\n".join(texts).encode() + b"\n"
        result: IngestResult = self.intake.submit(payload, len(owners), source, SENDER, key).result(
            timeout=self.ack_timeout_s)
        reasons = {}
        for error in result.errors:
            reasons.setdefault(owners[error["index"]].id, error["reason"])
        stored = [letter for letter in chunk if letter.id not in reasons]
        failed = [letter for letter in chunk if letter.id in reasons]
        self._mark(stored, "stored", key)
        self._mark(failed, "failed", key, reasons)
        outcome.stored += len(stored)
        outcome.failed += [{"id": str(letter.id), "reason": reasons[letter.id]} for letter in failed]
        outcome.records += len(owners)

    def _mark(self, letters: list[Letter], state: str, key: str, reasons: dict[int, str] | None = None) -> None:
        if not letters:
            return
        now_ms = int(time.time() * 1000)
        n = len(letters)
        table = pa.table({
            "id": pa.array([letter.id for letter in letters], pa.uint64()),
            "ts": pa.array([now_ms] * n, pa.int64()).cast(TS_TYPE),
            "state": [state] * n, "key": [key] * n, "source": [letter.source for letter in letters],
            "raw": [letter.raw for letter in letters],
            "copies": pa.array([letter.copies for letter in letters], pa.uint32()),
            "reason": [(reasons or {}).get(letter.id, "") for letter in letters],
        }, schema=DEAD_LETTER_REPLAY_SCHEMA)
        self.store.insert("dead_letter_replay", table)


def _check_fix(letter: Letter, fixes: dict[int, str], parsed: bool) -> None:
    fixed = fixes.get(letter.id)
    if fixed is None:
        return
    if len(fixed.encode()) > MAX_FIXED_BYTES:
        raise ReplayRefused(f"dead letter {letter.id}: a corrected text of more than {MAX_FIXED_BYTES:,} bytes")
    if not parsed and ("\n" in fixed or "\r" in fixed):
        raise ReplayRefused(f"dead letter {letter.id}: a corrected text is one JSON event on one line")
    if not fixed.strip():
        raise ReplayRefused(f"dead letter {letter.id}: the corrected text is empty")


def _unsendable(letter: Letter, parsed: bool) -> str:
    """Why the text cannot go as one record (it stays open, for a fix), or empty."""
    if not letter.raw.strip():
        return "its text is empty: correct it to a JSON event first"
    if not parsed and ("\n" in letter.raw or "\r" in letter.raw):
        return "its text holds line breaks: correct it to one JSON event on one line first"
    return ""


def _key(chunk: list[Letter]) -> str:
    """The chunk's idempotency key: its letters' ids and texts, so a resend of the same replay matches
    and a replay of other letters, or other texts, does not."""
    digest = hashlib.sha256()
    for letter in chunk:
        digest.update(f"{letter.id}:{letter.copies}:".encode() + letter.raw.encode() + b"\0")
    return f"dlq:{digest.hexdigest()[:40]}"
