from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

from logpipe.simulator.config import SimulatorConfig
from logpipe.simulator.runner import SimulatorRunner


def test_a_tick_goes_out_in_batches_no_larger_than_the_engine_takes():
    """At a rate whose ticks hold tens of thousands of events, no batch passes ``max_batch``, and
    every event of a tick still goes out, in event-time order across its batches."""
    batches: list[pa.Table] = []
    seen_enough = threading.Event()

    def emit(table: pa.Table) -> None:
        batches.append(table)
        if sum(t.num_rows for t in batches) >= 60_000:
            seen_enough.set()

    runner = SimulatorRunner(SimulatorConfig(rate=300_000, seed=3, diurnal=False, tick_s=0.1), emit,
                             max_batch=4_000)
    runner.start()
    try:
        assert seen_enough.wait(60)
    finally:
        runner.stop()
    sizes = [t.num_rows for t in batches]
    assert max(sizes) <= 4_000
    assert sum(sizes) == runner.generated
    assert any(size > 2_000 for size in sizes)  # ticks were split, not merely small
    last_ts = [t["ts"].to_numpy().max() for t in batches]
    first_ts = [t["ts"].to_numpy().min() for t in batches]
    one_ms = np.timedelta64(1, "ms")  # an app error is stamped a millisecond after its request
    assert all(later >= earlier - one_ms for earlier, later in zip(last_ts, first_ts[1:], strict=False))
    assert sum(t.num_rows for t in batches) == runner.generated
