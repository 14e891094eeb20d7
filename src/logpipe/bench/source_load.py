"""Load for the source scenarios, built once and sent back to back for a duration from a process of its
own: OTLP/HTTP protobuf requests as an OpenTelemetry exporter sends them, syslog over TCP as a relay
forwards it (RFC 5424, newline framing), and nginx access-log lines as a web server writes them."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

SERVICES = ("auth", "order", "payment", "notify")
PATHS = ("/api/login", "/api/orders", "/api/pay", "/api/notify", "/api/orders/42", "/health")
METHODS = ("GET", "POST", "GET", "PUT")
STATUSES = (200, 200, 200, 201, 204, 302, 404, 500)


def otlp_bodies(count: int, records: int, seed: int) -> list[bytes]:
    """``count`` ExportLogsServiceRequest bodies of ``records`` log records each, with HTTP
    semantic-convention attributes, one resource (service) per body."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    rng = np.random.default_rng(seed)
    bodies = []
    for i in range(count):
        request = ExportLogsServiceRequest()
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.append(
            KeyValue(key="service.name", value=AnyValue(string_value=SERVICES[i % len(SERVICES)])))
        scope = resource_logs.scope_logs.add()
        scope.scope.name = "bench"
        now_ns = time.time_ns()
        for j in range(records):
            record = scope.log_records.add()
            record.time_unix_nano = now_ns - int(rng.integers(0, 1_000_000_000))
            status = STATUSES[int(rng.integers(0, len(STATUSES)))]
            record.severity_number = 17 if status >= 500 else 9
            record.body.string_value = f"request {j} served"
            record.trace_id = rng.bytes(16)
            record.span_id = rng.bytes(8)
            record.attributes.extend([
                KeyValue(key="http.request.method", value=AnyValue(string_value=METHODS[j % len(METHODS)])),
                KeyValue(key="url.path", value=AnyValue(string_value=PATHS[j % len(PATHS)])),
                KeyValue(key="http.response.status_code", value=AnyValue(int_value=status)),
                KeyValue(key="client.address", value=AnyValue(string_value=f"10.0.{j % 250}.{i % 250}")),
            ])
        bodies.append(request.SerializeToString())
    return bodies


def syslog_block(lines: int, seed: int) -> bytes:
    """``lines`` RFC 5424 messages, newline-framed, stamped now."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
    rng = np.random.default_rng(seed)
    out = []
    for i in range(lines):
        severity = int(rng.integers(2, 7))
        out.append(f"<{16 * 8 + severity}>1 {stamp} host-{i % 20} app-{i % 7} {1000 + i % 90} ID{i % 5} "
                   f"[meta seq=\"{i}\"] disk {i % 4} at {int(rng.integers(0, 100))}% on volume v{i % 9}\n")
    return "".join(out).encode()


def nginx_lines(lines: int, seed: int) -> bytes:
    """``lines`` nginx combined access-log lines with ``$request_time``, stamped now."""
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    rng = np.random.default_rng(seed)
    statuses = rng.integers(0, len(STATUSES), lines)
    sizes = rng.integers(100, 50_000, lines)
    times = rng.integers(1, 900, lines)
    out = [f'10.1.{i % 250}.{i % 199} - - [{stamp}] "{METHODS[i % 4]} {PATHS[i % 6]}?page={i % 13} HTTP/1.1" '
           f'{STATUSES[statuses[i]]} {sizes[i]} "-" "Mozilla/5.0 (X11; Linux x86_64) bench/{i % 3}" '
           f'0.{times[i]:03d}\n' for i in range(lines)]
    return "".join(out).encode()


def write_nginx_log(path: Path, lines: int, seed: int = 0, block: int = 100_000) -> int:
    """An access log of ``lines`` lines at ``path``; its size in bytes."""
    with open(path, "wb") as out:
        body = nginx_lines(block, seed)
        for _ in range(lines // block):
            out.write(body)
    return path.stat().st_size


def send_otlp(url: str, duration_s: float, seed: int, concurrency: int, records: int = 8192) -> dict[str, int]:
    """Requests of ``records`` log records (8,192: what the Collector's batch processor sends by
    default) posted back to back by ``concurrency`` exporters."""
    import httpx

    bodies = otlp_bodies(8, records, seed)
    token = os.environ.get("LOGPIPE_INGEST_TOKEN", "")  # from the environment: a command line is public
    totals: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s

    def send(offset: int) -> None:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        counts: Counter[str] = Counter()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}
        with httpx.Client(timeout=60, headers=headers) as client:
            i = offset
            while time.monotonic() < deadline:
                body = bodies[i % len(bodies)]
                i += 1
                response = client.post(url, content=body)
                if response.status_code == 200:
                    answer = ExportLogsServiceResponse.FromString(response.content)
                    counts["accepted"] += records - answer.partial_success.rejected_log_records
                    counts["bytes"] += len(body)
                elif response.status_code in (429, 503):
                    counts["throttled"] += 1
                    time.sleep(0.05)
        with lock:
            totals.update(counts)

    _run_senders(send, concurrency)
    return {"accepted": totals["accepted"], "throttled": totals["throttled"], "bytes": totals["bytes"]}


def send_syslog(port: int, duration_s: float, seed: int, concurrency: int, lines: int = 2000) -> dict[str, int]:
    block = syslog_block(lines, seed)
    totals: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s

    def send(_offset: int) -> None:
        sent = 0
        with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
            while time.monotonic() < deadline:
                connection.sendall(block)  # blocks while the listener holds back reading (backpressure)
                sent += 1
        with lock:
            totals["accepted"] += sent * lines
            totals["bytes"] += sent * len(block)

    _run_senders(send, concurrency)
    return {"accepted": totals["accepted"], "throttled": 0, "bytes": totals["bytes"]}


def _run_senders(send, concurrency: int) -> None:
    senders = [threading.Thread(target=send, args=(k * 7,)) for k in range(concurrency)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()


if __name__ == "__main__":
    kind, target, duration, seed, concurrency = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), \
        int(sys.argv[5])
    sent = (send_otlp(target, duration, seed, concurrency) if kind == "otlp"
            else send_syslog(int(target), duration, seed, concurrency))
    sys.stdout.write(json.dumps(sent) + "\n")
