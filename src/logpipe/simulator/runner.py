"""The live simulator: a thread that emits each tick's events at the target rate on a simulated clock."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa

from logpipe import metrics
from logpipe.simulator.config import SimulatorConfig
from logpipe.simulator.generator import TrafficGenerator
from logpipe.simulator.incidents import Incident, IncidentRequest, IncidentType
from logpipe.simulator.model import diurnal_factor

log = logging.getLogger(__name__)
MAX_TICK_EVENTS = 200_000  # generated per tick at most: past it the pipeline is behind and the excess is not owed


class Scenario(StrEnum):
    STEADY = "steady"  # the configured rate, flat
    DIURNAL = "diurnal"  # the rate shaped by the time-of-day curve
    CHAOS = "chaos"  # diurnal, plus a random incident every few simulated minutes


@dataclass
class SimClock:
    """Simulated epoch seconds advancing ``speed`` times faster than the wall clock."""

    speed: float
    sim_origin: float
    wall_origin: float

    @classmethod
    def starting_now(cls, speed: float) -> SimClock:
        return cls(speed, time.time(), time.monotonic())

    def now(self) -> float:
        return self.sim_origin + (time.monotonic() - self.wall_origin) * self.speed

    def set_speed(self, speed: float) -> None:
        self.sim_origin, self.wall_origin, self.speed = self.now(), time.monotonic(), speed


class SimulatorRunner:
    """Calls ``emit(table)`` with each batch; ``emit`` blocks when the pipeline is full (backpressure).

    A tick's events go out in batches of at most ``max_batch``: an engine passes what its queue holds,
    so that a batch never takes more room than the queue's bound (a larger one would be admitted only
    into an empty queue, and every stage after it would hold that much more memory)."""

    def __init__(self, config: SimulatorConfig, emit: Callable[[pa.Table], None], max_batch: int = MAX_TICK_EVENTS):
        seed = config.seed if config.seed is not None else int(np.random.default_rng().integers(2**31))
        self.config = config
        self.seed = seed
        # a per-run prefix keeps event ids unique across restarts on the same store
        self.generator = TrafficGenerator(seed, id_prefix=f"sim-{seed:x}-{int(time.time() * 1000):x}-")
        self.clock = SimClock.starting_now(config.speed)
        self.scenario = Scenario.DIURNAL if config.diurnal else Scenario.STEADY
        self.emit = emit
        self.max_batch = max(1, min(max_batch, MAX_TICK_EVENTS))
        self.generated = 0
        self._chaos_rng = np.random.default_rng(seed + 1)
        self._next_chaos_s = 0.0
        self._running = threading.Event()
        if config.running:
            self._running.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.rate_recent = 0.0
        metrics.register_component("simulator")

    # control ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="logpipe-simulator", daemon=True)
        self._thread.start()
        metrics.COMPONENT_UP.labels(component="simulator").set(1)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        metrics.COMPONENT_UP.labels(component="simulator").set(0)

    def update(self, running: bool | None = None, rate: float | None = None, scenario: Scenario | None = None,
               speed: float | None = None) -> None:
        with self._lock:
            if rate is not None:
                self.config = replace(self.config, rate=rate)
            if scenario is not None:
                self.scenario = scenario
            if speed is not None:
                self.clock.set_speed(speed)
                self.config = replace(self.config, speed=speed)
            if running is not None:
                (self._running.set if running else self._running.clear)()

    def add_incident(self, request: IncidentRequest) -> Incident:
        with self._lock:
            return self.generator.schedule.add(request, self.clock.now())

    def incidents(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [i.as_dict(now) for i in self.generator.schedule.incidents]

    def status(self) -> dict[str, Any]:
        return {
            "running": self._running.is_set(),
            "rate": self.config.rate,
            "scenario": self.scenario.value,
            "speed": self.clock.speed,
            "seed": self.seed,
            "sim_time": self.clock.now(),
            "generated": self.generated,
            "rate_recent": round(self.rate_recent, 1),
            "current_target_rate": round(self.target_rate(self.clock.now()), 1),
        }

    # generation --------------------------------------------------------------------------------
    def target_rate(self, sim_now: float) -> float:
        rate = self.config.rate
        if self.scenario is not Scenario.STEADY:
            rate *= float(diurnal_factor(sim_now))
        effects = self.generator.effects_at(sim_now)
        return rate * float(np.dot(self.generator.model.service_share, effects.volume_factor))

    def _maybe_chaos(self, sim_now: float) -> None:
        if self.scenario is not Scenario.CHAOS or sim_now < self._next_chaos_s:
            return
        rng = self._chaos_rng
        kind = IncidentType(rng.choice([t.value for t in IncidentType]))
        service = str(rng.choice(self.generator.model.services))
        self.generator.schedule.add(IncidentRequest(type=kind, service=service,
                                                    duration_s=float(rng.uniform(60, 300))), sim_now)
        self._next_chaos_s = sim_now + float(rng.uniform(300, 900))

    def _run(self) -> None:
        metrics.name_os_thread()
        tick = self.config.tick_s
        last_wall = time.monotonic()
        last_sim = self.clock.now()
        carry = 0.0
        window_start, window_count = last_wall, 0
        while not self._stop.is_set():
            started = time.monotonic()
            sim_now = self.clock.now()
            if not self._running.is_set():
                last_wall, last_sim, carry = started, sim_now, 0.0
                self.rate_recent = 0.0
                self._stop.wait(tick)
                continue
            with self._lock:
                self._maybe_chaos(sim_now)
                wanted = self.target_rate(sim_now) * (started - last_wall) + carry
                n = min(int(wanted), MAX_TICK_EVENTS)
                carry = wanted - int(wanted) if n < MAX_TICK_EVENTS else 0.0
            try:
                window_count += self._emit_tick(n, last_sim, sim_now)
            except Exception as exc:  # the pipeline is shutting down
                log.info("simulator stopped emitting: %s", exc)
                break
            last_wall, last_sim = started, sim_now
            now = time.monotonic()
            if now - window_start >= 2.0:
                self.rate_recent = window_count / (now - window_start)
                window_start, window_count = now, 0
            self._stop.wait(max(0.0, tick - (now - started)))

    def _emit_tick(self, n: int, sim_from: float, sim_to: float) -> int:
        """The tick's ``n`` events in batches of at most ``max_batch``, each over its share of the
        tick's simulated time; returns how many went out."""
        batches, sent = -(-n // self.max_batch), 0
        for i in range(batches):
            count = n * (i + 1) // batches - n * i // batches
            span_from = sim_from + (sim_to - sim_from) * i / batches
            span_to = sim_from + (sim_to - sim_from) * (i + 1) / batches
            with self._lock:
                table = self.generator.generate(count, span_from, span_to)
            self.emit(table)
            sent += table.num_rows
            self.generated += table.num_rows
            metrics.EVENTS_SENT.labels(component="simulator").inc(table.num_rows)
        return sent
