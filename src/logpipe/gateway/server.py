"""Serving an app beside a main loop that owns the process's signals (``logpipe process``)."""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI


class BackgroundServer:
    """uvicorn in a thread; it installs no signal handlers there, so the main loop keeps them."""

    def __init__(self, app: FastAPI, host: str, port: int):
        # log_config=None: uvicorn logs through the root logger's handlers, and so through their redaction
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None))
        self.thread = threading.Thread(target=self.server.run, name=f"logpipe-http-{port}", daemon=True)

    def start(self, timeout_s: float = 15.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"HTTP server on port {self.server.config.port} did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
