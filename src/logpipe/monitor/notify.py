"""Notifiers (Slack incoming webhook, generic JSON webhook, console) behind a bounded queue.

Sending happens on the dispatcher's own thread with timeouts and retries with backoff, so a slow
or dead webhook never blocks the watchdog or the pipeline; when the queue is full, the newest
message is dropped and counted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import urlencode

import httpx
from prometheus_client import Counter

from logpipe import metrics

log = logging.getLogger("logpipe.watchdog")

NOTIFICATIONS = Counter("logpipe_watchdog_notifications", "Alert messages by notifier and outcome.",
                        ["notifier", "outcome"], registry=metrics.REGISTRY)


@dataclass(frozen=True)
class Alert:
    state: str  # firing | resolved
    rule: str
    subject: str
    severity: str
    value: float
    threshold: float
    since: float  # epoch seconds the condition began (firing) or the alert fired (resolved)
    at: float
    message: str
    dashboard_url: str = ""

    @property
    def link(self) -> str:
        if not self.dashboard_url:
            return ""
        service = {"service": self.subject} if self.subject not in ("pipeline",) else {}
        return f"{self.dashboard_url}?{urlencode(service)}" if service else self.dashboard_url

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "since": _iso(self.since), "at": _iso(self.at), "link": self.link}


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


class Notifier(Protocol):
    name: str

    def send(self, alert: Alert, client: httpx.Client) -> None: ...


class ConsoleNotifier:
    name = "console"

    def send(self, alert: Alert, client: httpx.Client) -> None:
        level = logging.WARNING if alert.state == "firing" else logging.INFO
        log.log(level, "[%s] %s %s: %s", alert.state.upper(), alert.rule, alert.subject, alert.message)


class WebhookNotifier:
    """A generic JSON webhook: the alert's fields, one POST per transition."""

    name = "webhook"

    def __init__(self, url: str):
        self.url = url

    def send(self, alert: Alert, client: httpx.Client) -> None:
        client.post(self.url, json=alert.as_json()).raise_for_status()


class SlackNotifier:
    """A Slack incoming webhook, with Block Kit: severity, subject, value against threshold, since, link."""

    name = "slack"
    ICONS: ClassVar[dict[str, str]] = {"critical": ":red_circle:", "warning": ":large_orange_circle:",
                                       "info": ":large_blue_circle:"}

    def __init__(self, url: str):
        self.url = url

    def payload(self, alert: Alert) -> dict[str, Any]:
        icon = ":white_check_mark:" if alert.state == "resolved" else self.ICONS.get(alert.severity, "")
        title = f"{icon} [{alert.state.upper()}] {alert.rule} — {alert.subject}"
        fields = [f"*Severity*\n{alert.severity}", f"*Subject*\n{alert.subject}",
                  f"*Value*\n{alert.value:.4g} (threshold {alert.threshold:.4g})",
                  f"*Since*\n{_iso(alert.since)}"]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.message},
             "fields": [{"type": "mrkdwn", "text": text} for text in fields]},
        ]
        if alert.link:
            blocks.append({"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": alert.link}]})
        return {"text": f"{title}: {alert.message}", "blocks": blocks}

    def send(self, alert: Alert, client: httpx.Client) -> None:
        client.post(self.url, json=self.payload(alert)).raise_for_status()


class Dispatcher:
    """A bounded queue and one sender thread; each notifier retries with exponential backoff."""

    def __init__(self, notifiers: list[Notifier], capacity: int = 1000, timeout_s: float = 5.0,
                 max_attempts: int = 8, first_backoff_s: float = 0.5, max_backoff_s: float = 30.0):
        self.notifiers = notifiers
        self.queue: queue.Queue[Alert | None] = queue.Queue(maxsize=capacity)
        self.client = httpx.Client(timeout=timeout_s)
        self.max_attempts = max_attempts
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="logpipe-notify", daemon=True)
        self._thread.start()

    def submit(self, alert: Alert) -> bool:
        try:
            self.queue.put_nowait(alert)
            return True
        except queue.Full:
            NOTIFICATIONS.labels(notifier="queue", outcome="dropped").inc()
            log.error("notification queue full: dropped %s %s %s", alert.state, alert.rule, alert.subject)
            return False

    def _run(self) -> None:
        while True:
            alert = self.queue.get()
            if alert is None:
                return
            for notifier in self.notifiers:
                self._deliver(notifier, alert)

    def _deliver(self, notifier: Notifier, alert: Alert) -> None:
        backoff = self.first_backoff_s
        for attempt in range(1, self.max_attempts + 1):
            try:
                notifier.send(alert, self.client)
                NOTIFICATIONS.labels(notifier=notifier.name, outcome="sent").inc()
                return
            except (httpx.HTTPError, OSError) as exc:
                NOTIFICATIONS.labels(notifier=notifier.name, outcome="retried").inc()
                log.warning("%s notification failed (attempt %d/%d): %s", notifier.name, attempt,
                            self.max_attempts, exc)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, self.max_backoff_s)
        NOTIFICATIONS.labels(notifier=notifier.name, outcome="failed").inc()
        log.error("%s notification given up: %s %s %s", notifier.name, alert.state, alert.rule, alert.subject)

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued for up to ``timeout_s``, then stop retrying."""
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._stop.set()
        self._thread.join(timeout_s)
        self.client.close()


def notifiers_for(slack_webhook_url: str, webhook_url: str) -> list[Notifier]:
    chosen: list[Notifier] = [ConsoleNotifier()]
    if slack_webhook_url:
        chosen.append(SlackNotifier(slack_webhook_url))
    if webhook_url:
        chosen.append(WebhookNotifier(webhook_url))
    return chosen
