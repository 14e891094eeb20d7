"""A load process for the http-ingest and kafka-max scenarios: NDJSON batches posted back to back for a
duration, by a few concurrent senders (as a log shipper's HTTP sink sends several requests at once)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter

import httpx

from logpipe.codec.ndjson import encode_ndjson
from logpipe.simulator.generator import TrafficGenerator


def main(base: str, duration_s: float, batch: int, seed: int, concurrency: int = 4,
         rate: float = 0.0) -> dict[str, int]:
    """``rate`` events/s from this process (0: as fast as the answers come)."""
    generator = TrafficGenerator(seed=seed, id_prefix=f"load{seed}-")
    now = time.time()
    bodies = [encode_ndjson(generator.generate(batch, now - 1, now).slice(0, batch)) for _ in range(50)]
    totals: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s

    def send(offset: int) -> None:
        counts: Counter[str] = Counter()
        interval = batch * concurrency / rate if rate else 0.0  # each sender's share of the rate
        next_at = time.monotonic() + interval * offset / (7 * concurrency)
        # the token from this process's environment: a command line is visible to every user (ps)
        token = os.environ.get("LOGPIPE_INGEST_TOKEN", "")
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
            i = offset
            while time.monotonic() < deadline:
                if interval:
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += interval
                body = bodies[i % len(bodies)]
                i += 1
                response = client.post("/v1/logs", content=body, headers={"content-type": "application/x-ndjson"})
                if response.status_code == 200:
                    counts["accepted"] += response.json()["accepted"]
                    counts["bytes"] += len(body)
                elif response.status_code == 429:
                    counts["throttled"] += 1
                    time.sleep(float(response.headers.get("retry-after", "0.1")) / 10)
        with lock:
            totals.update(counts)

    senders = [threading.Thread(target=send, args=(k * 7,)) for k in range(concurrency)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    return {"accepted": totals["accepted"], "throttled": totals["throttled"], "bytes": totals["bytes"]}


if __name__ == "__main__":
    base, duration, batch, seed, concurrency, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    sys.stdout.write(json.dumps(main(base, duration, batch, seed, concurrency, rate)) + "\n")
