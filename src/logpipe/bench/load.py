"""A load process for the http-ingest scenario: NDJSON batches posted back to back for a duration."""

from __future__ import annotations

import json
import sys
import time

import httpx

from logpipe.simulator.generator import TrafficGenerator
from logpipe.transport.wire import encode_ndjson


def main(base: str, duration_s: float, batch: int, seed: int) -> dict[str, int]:
    generator = TrafficGenerator(seed=seed, id_prefix=f"load{seed}-")
    now = time.time()
    bodies = [encode_ndjson(generator.generate(batch, now - 1, now).slice(0, batch)) for _ in range(50)]
    accepted = throttled = sent = 0
    deadline = time.monotonic() + duration_s
    with httpx.Client(base_url=base, timeout=60) as client:
        i = 0
        while time.monotonic() < deadline:
            body = bodies[i % len(bodies)]
            i += 1
            response = client.post("/v1/logs", content=body, headers={"content-type": "application/x-ndjson"})
            if response.status_code == 200:
                accepted += response.json()["accepted"]
                sent += len(body)
            elif response.status_code == 429:
                throttled += 1
                time.sleep(float(response.headers.get("retry-after", "0.1")) / 10)
    return {"accepted": accepted, "throttled": throttled, "bytes": sent}


if __name__ == "__main__":
    base, duration, batch, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sys.stdout.write(json.dumps(main(base, duration, batch, seed)) + "\n")
