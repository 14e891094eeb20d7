"""Container events and logs through the Docker SDK, against a recorded Engine API on a unix socket."""

from __future__ import annotations

import json
import re
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from logpipe.monitor.checks import Observer
from logpipe.monitor.containers import ContainerWatcher
from logpipe.monitor.engine import Watchdog
from logpipe.monitor.notify import Alert, Dispatcher
from logpipe.monitor.rules import RuleSet
from tests.kafka_support import wait_for

CONTAINER = {"Id": "c0ffee" * 10 + "abcd", "Names": ["/logpipe-spark-1"], "State": "running", "Status": "Up",
             "Image": "logpipe-spark", "ImageID": "sha256:0", "Command": "logpipe spark", "Created": 0,
             "Labels": {}, "Ports": [], "Mounts": []}
EVENTS = [  # as `docker events --format '{{json .}}'` records them
    {"Type": "container", "Action": "health_status: unhealthy", "status": "health_status: unhealthy",
     "id": CONTAINER["Id"], "Actor": {"ID": CONTAINER["Id"], "Attributes": {"name": "logpipe-clickhouse-1"}}},
    {"Type": "container", "Action": "oom", "status": "oom", "id": CONTAINER["Id"],
     "Actor": {"ID": CONTAINER["Id"], "Attributes": {"name": "logpipe-spark-1"}}},
    {"Type": "container", "Action": "die", "status": "die", "id": CONTAINER["Id"],
     "Actor": {"ID": CONTAINER["Id"], "Attributes": {"name": "logpipe-spark-1", "exitCode": "0"}}},
    {"Type": "container", "Action": "health_status: healthy", "status": "health_status: healthy",
     "id": CONTAINER["Id"], "Actor": {"ID": CONTAINER["Id"], "Attributes": {"name": "logpipe-clickhouse-1"}}},
]
LOG_LINES = [
    b"26/11/25 10:00:00 INFO MicroBatchExecution: Streaming query made progress\n",
    b"pyspark.errors.exceptions.captured.StreamingQueryException: [STREAM_FAILED] Query terminated\n",
    b"26/11/25 10:00:01 INFO SparkContext: Invoking stop()\n",
]


class EngineHandler(BaseHTTPRequestHandler):
    """The few Engine API calls the SDK makes, with chunked streams as the real daemon sends them."""

    protocol_version = "HTTP/1.1"

    def _json(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, chunks: list[bytes], content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
            time.sleep(0.05)
        time.sleep(1)
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def do_GET(self) -> None:
        path = re.sub(r"^/v[\d.]+", "", self.path.split("?")[0])
        if path == "/events":
            self._stream([json.dumps(e).encode() + b"\n" for e in EVENTS], "application/json")
        elif path == "/containers/json":
            self._json([CONTAINER])
        elif path.endswith("/json"):
            self._json({"Id": CONTAINER["Id"], "Name": "/logpipe-spark-1", "Config": {"Tty": True},
                        "State": {"Running": True}})
        elif path.endswith("/logs"):
            self._stream(LOG_LINES, "application/vnd.docker.raw-stream")
        else:
            self.send_error(404)

    def log_message(self, *args) -> None:
        pass


class EngineServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Collected:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    name = "collect"

    def send(self, alert: Alert, client) -> None:
        self.alerts.append(alert)


@pytest.fixture
def engine_socket(tmp_path):
    path = tmp_path / "docker.sock"
    server = EngineServer(str(path), EngineHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"unix://{path}"
    server.shutdown()


def test_an_oom_event_and_a_streaming_query_exception_each_alert_once(engine_socket):
    collected = Collected()
    watchdog = Watchdog(RuleSet(interval_s=60, rules=[]), Observer(None, dict, str), Dispatcher([collected]))
    watcher = ContainerWatcher(watchdog.report_event, engine_socket)
    watcher.start()
    try:
        assert wait_for(lambda: len(collected.alerts) >= 4, 30), collected.alerts
        time.sleep(2)  # the streams reconnect; a repeat inside the cooldown must stay quiet
    finally:
        watcher.stop()
        watchdog.dispatcher.close()
    seen = [(a.rule, a.subject, a.state) for a in collected.alerts]
    assert seen.count(("container_oom", "logpipe-spark-1", "firing")) == 1
    assert seen.count(("container_log", "logpipe-spark-1: StreamingQueryException", "firing")) == 1
    assert seen.count(("container_unhealthy", "logpipe-clickhouse-1", "firing")) == 1
    assert seen.count(("container_unhealthy", "logpipe-clickhouse-1", "resolved")) == 1
    assert not any(rule == "container_died" for rule, _, _ in seen)  # exit code 0 is a clean stop
    assert len(seen) == 4
