"""The dimension sync: what the stream cannot write into the dimension tables by itself.

The stream's part (each service's, endpoint's and host's first and last event, and a service's
events) is written by materialized views in the same insert as the facts (``sql/052``-``060``), so it
is deduplicated with them and a crash cannot lose it. Every engine runs a ``DimensionSync`` every
``LOGPIPE_DIM_SYNC_S`` seconds for the rest:

- the service catalog (``LOGPIPE_SERVICE_CATALOG``, YAML): tier, team and owner, written when they change;
- the calendar (``dim_time``): the hours of the retention window and of the days ahead that it lacks;
- the dictionaries over the dimensions, reloaded, so ``dictGet`` sees what the last sync saw.

A sync that fails (an unreadable catalog, a store that is down) is logged and counted, never raised
into the engine; the next one tries again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from logpipe import metrics
from logpipe.warehouse import queries
from logpipe.warehouse.errors import StoreError
from logpipe.warehouse.store import Store

log = logging.getLogger(__name__)

_SERVICE = re.compile(r"[a-z0-9._-]{1,128}")  # the event schema's service names, lower-cased by ingest
CATALOG_SCHEMA = pa.schema([("service", pa.string()), ("tier", pa.string()), ("team", pa.string()),
                            ("owner", pa.string()), ("version", pa.uint64())])


@dataclass(frozen=True)
class DimensionConfig:
    sync_s: float = 60.0  # 0: no sync (the views still record the stream; dictionaries reload on their LIFETIME)
    catalog: Path | None = None
    days_ahead: int = 14


class CatalogError(ValueError):
    """A catalog file that cannot be read; the message names the file and what is wrong."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: str = Field("", max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
    team: str = Field("", max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")
    owner: str = Field("", max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")


class _Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    services: dict[str, _Entry] = Field(default_factory=dict)


Entry = tuple[str, str, str]  # tier, team, owner


def read_catalog(path: Path) -> dict[str, Entry]:
    """The catalog's entries by service (lower-cased, as ingest stores service names)."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"service catalog {path}: {exc}") from exc
    try:
        catalog = _Catalog.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CatalogError(f"service catalog {path}: {problems}") from exc
    entries: dict[str, Entry] = {}
    for name, entry in catalog.services.items():
        service = name.lower()
        if not _SERVICE.fullmatch(service):
            raise CatalogError(f"service catalog {path}: {name!r} is not a service name (letters, digits, '.', "
                               "'_' and '-', at most 128)")
        if service in entries:
            raise CatalogError(f"service catalog {path}: {name!r} is listed twice")
        entries[service] = (entry.tier, entry.team, entry.owner)
    return entries


class _Writer(Protocol):
    database: str

    def insert(self, table: str, data: pa.Table, token: str | None = None) -> None: ...

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None, readonly: bool = True,
                   ) -> tuple[list[str], list[tuple]]: ...

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any: ...


@dataclass
class SyncReport:
    catalog_rows: int = 0
    hours_added: int = 0
    dictionaries: int = 0
    errors: list[str] = field(default_factory=list)


class DimensionSync:
    """One engine's sync of the dimensions; ``start`` runs it on its interval in a thread of its own."""

    def __init__(self, store: _Writer, config: DimensionConfig, retention_days: int):
        self.store = store
        self.config = config
        self.retention_days = retention_days
        self._applied_digest: bytes | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""

    def _sql(self, text: str) -> str:
        return queries.in_database(text, self.store.database)

    def sync(self) -> SyncReport:
        """One sync; every part runs even when another fails, and each failure is in the report."""
        report = SyncReport()
        started = time.perf_counter()
        for part in (self._sync_catalog, self._extend_calendar, self._reload_dictionaries):
            try:
                part(report)
            except (CatalogError, StoreError) as exc:
                report.errors.append(str(exc))
        metrics.DIMENSION_SYNC_SECONDS.observe(time.perf_counter() - started)
        metrics.DIMENSION_SYNCS.labels(result="error" if report.errors else "ok").inc()
        self.last_error = report.errors[-1] if report.errors else ""
        for error in report.errors:
            log.error("dimension sync: %s", error)
        return report

    def _sync_catalog(self, report: SyncReport) -> None:
        path = self.config.catalog
        if path is None:
            return
        try:
            digest = hashlib.sha256(path.read_bytes()).digest()
        except OSError as exc:
            raise CatalogError(f"service catalog {path}: {exc}") from exc
        if digest == self._applied_digest:
            return
        wanted = read_catalog(path)
        current = {service: ((tier, team, owner), version) for service, tier, team, owner, version
                   in self.store.query_rows(self._sql(queries.CATALOG_ENTRIES), readonly=False)[1]}
        changed = {service: entry for service, entry in wanted.items()
                   if current.get(service, (("", "", ""), 0))[0] != entry}
        for service, (entry, _) in current.items():  # dropped from the file: its fields emptied
            if service not in wanted and entry != ("", "", ""):
                changed[service] = ("", "", "")
        if changed:
            # Above every version so far, also another process's or a clock set back since.
            version = max(time.time_ns() // 1_000_000, max((v for _, v in current.values()), default=0) + 1)
            services = sorted(changed)
            self.store.insert("dim_service_catalog", pa.table({
                "service": services, "tier": [changed[s][0] for s in services],
                "team": [changed[s][1] for s in services], "owner": [changed[s][2] for s in services],
                "version": [version] * len(services)}, schema=CATALOG_SCHEMA))
            log.info("dimension sync: service catalog %s applied (%d services changed)", path, len(services))
        report.catalog_rows = len(changed)
        self._applied_digest = digest

    def _extend_calendar(self, report: SyncReport) -> None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=self.retention_days)
        hours = (self.retention_days + 1 + self.config.days_ahead) * 24
        before = self._calendar_hours(start)
        self.store.command(self._sql(queries.EXTEND_CALENDAR), {"start": int(start.timestamp()), "hours": hours})
        report.hours_added = self._calendar_hours(start) - before

    def _calendar_hours(self, start: datetime) -> int:
        rows = self.store.query_rows(self._sql(queries.CALENDAR_HOURS), {"start": int(start.timestamp())},
                                     readonly=False)[1]
        return int(rows[0][0])

    def _reload_dictionaries(self, report: SyncReport) -> None:
        for name in queries.DICTIONARIES:
            self.store.command(queries.RELOAD_DICTIONARY.format(db=self.store.database, name=name))
            report.dictionaries += 1

    def start(self) -> DimensionSync:
        """Sync now, then every ``sync_s`` until ``stop``; with ``sync_s`` 0, never."""
        if self.config.sync_s > 0:
            self._thread = threading.Thread(target=self._run, name="dimension-sync", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        metrics.name_os_thread()
        while True:
            self.sync()
            if self._stop.wait(self.config.sync_s):
                return

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)



def start_sync(store: object, config: DimensionConfig, retention_days: int) -> DimensionSync | None:
    """The running sync of an engine that writes ``store`` itself; None for one whose store belongs to
    another process (a worker of ``logpipe process --workers N`` on the embedded store), which syncs."""
    if not isinstance(store, Store):
        return None
    return DimensionSync(store, config, retention_days).start()
