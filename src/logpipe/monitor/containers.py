"""Container events and logs of the compose deployment, through the Docker SDK (socket read-only).

Docker Engine events ``oom``, ``die`` (non-zero exit) and ``health_status`` (unhealthy, healthy
again), and container log lines matching patterns such as ``StreamingQueryException`` or
``OutOfMemoryError``, become alerts of the watchdog.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

log = logging.getLogger("logpipe.watchdog")
DEFAULT_PATTERNS = ("StreamingQueryException", "OutOfMemoryError", "Traceback \\(most recent call last\\)")
ContainerReport = Callable[[str, str, str, str], None]  # rule, subject, state, message


class ContainerWatcher:
    """Follows the Engine's event stream and the logs of running containers until stopped."""

    def __init__(self, report: ContainerReport, base_url: str = "unix:///var/run/docker.sock",
                 patterns: tuple[str, ...] = DEFAULT_PATTERNS, api_version: str = "1.44"):
        import docker

        self.client = docker.DockerClient(base_url=base_url, version=api_version, timeout=30)
        self.report = report
        self.patterns = [re.compile(p) for p in patterns]
        self._stop = threading.Event()
        self._followed: set[str] = set()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._spawn(self._follow_events, "logpipe-docker-events")
        for container in self.client.containers.list():
            self._follow_logs(container.id, container.name)

    def stop(self) -> None:
        self._stop.set()
        self.client.close()

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _follow_events(self) -> None:
        filters = {"type": "container", "event": ["die", "oom", "health_status", "start"]}
        while not self._stop.is_set():
            try:
                for event in self.client.events(decode=True, filters=filters, since=int(time.time())):
                    self.handle_event(event)
                    if self._stop.is_set():
                        return
            except Exception as exc:  # the engine restarted or the socket went away: reconnect
                if self._stop.is_set():
                    return
                log.warning("docker events stream broke (%s); reconnecting", exc)
                self._stop.wait(5)

    def handle_event(self, event: dict) -> None:
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        name = attributes.get("name") or (actor.get("ID") or event.get("id", ""))[:12]
        action = event.get("Action") or event.get("status") or ""
        if action == "oom":
            self.report("container_oom", name, "firing", f"container {name} was killed: out of memory")
        elif action == "die" and attributes.get("exitCode", "0") != "0":
            self.report("container_died", name, "firing",
                        f"container {name} exited with code {attributes.get('exitCode')}")
        elif action.startswith("health_status"):
            status = action.split(":", 1)[-1].strip()
            state = "firing" if status == "unhealthy" else "resolved"
            self.report("container_unhealthy", name, state, f"container {name} is {status}")
        elif action == "start":
            self._follow_logs(actor.get("ID") or event.get("id", ""), name)

    def _follow_logs(self, container_id: str, name: str) -> None:
        if not container_id or container_id in self._followed:
            return
        self._followed.add(container_id)
        self._spawn(self._read_logs, f"logpipe-docker-logs-{name}", container_id, name)

    def _read_logs(self, container_id: str, name: str) -> None:
        try:
            stream = self.client.api.logs(container_id, stream=True, follow=True, since=int(time.time()) - 1)
            pending = b""
            for chunk in stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self.match_line(name, line.decode("utf-8", "replace"))
                if self._stop.is_set():
                    return
        except Exception as exc:
            if not self._stop.is_set():
                log.warning("stopped following the logs of %s: %s", name, exc)
        finally:
            self._followed.discard(container_id)

    def match_line(self, name: str, line: str) -> None:
        for pattern in self.patterns:
            if pattern.search(line):
                self.report("container_log", f"{name}: {pattern.pattern}", "firing",
                            f"{name} logged: {line.strip()[:300]}")
                return
