"""Where each followed file stands, kept on disk so a restart (even after ``kill -9``) loses and
repeats no line.

A file is known by its fingerprint, not its name, so a renamed (rotated) file keeps its place. Its
entry holds ``offset``, the bytes the engine has acknowledged, and ``pending``, the byte ranges
handed on and not yet acknowledged. A range is written here before it is handed on, so after a crash
exactly that range is handed on again, under the same idempotency key, and stored once.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MAX_ENTRIES = 10_000  # files long gone are forgotten first


@dataclass
class Position:
    path: str
    offset: int = 0
    pending: list[tuple[int, int]] = field(default_factory=list)
    seen: float = field(default_factory=time.time)


class Checkpoints:
    """A JSON file, written whole (a temporary file, fsync, rename) whenever a position changes."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self.positions: dict[str, Position] = {}
        if path.exists():
            try:
                stored = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise RuntimeError(f"file checkpoints at {path} cannot be read ({exc}); move the file away to "
                                   "start over (files are then read again from where `start_at` says)") from exc
            for fingerprint, entry in stored.get("files", {}).items():
                self.positions[fingerprint] = Position(entry["path"], int(entry["offset"]),
                                                       [(int(s), int(e)) for s, e in entry.get("pending", [])],
                                                       float(entry.get("seen", time.time())))

    def get(self, fingerprint: str) -> Position | None:
        with self._lock:
            return self.positions.get(fingerprint)

    def save(self, fingerprint: str, position: Position) -> None:
        with self._lock:
            position.seen = time.time()
            self.positions[fingerprint] = position
            if len(self.positions) > MAX_ENTRIES:
                for stale, _ in sorted(self.positions.items(), key=lambda item: item[1].seen)[:-MAX_ENTRIES]:
                    del self.positions[stale]
            document = {"files": {fp: {"path": p.path, "offset": p.offset, "pending": p.pending, "seen": p.seen}
                                  for fp, p in self.positions.items()}}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            with open(temporary, "w") as out:
                json.dump(document, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
