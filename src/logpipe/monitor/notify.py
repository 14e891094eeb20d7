"""Notifiers (Slack incoming webhook, generic JSON webhook, console), each behind a bounded queue.

Each notifier sends on a thread of its own with timeouts and retries with backoff, so a slow or dead
webhook never blocks the watchdog, the pipeline or another notifier; when a queue is full, the newest
message is dropped and counted. Webhook URLs are secrets: log lines name the notifier and the HTTP
status, never the URL. Text that clients control (service names) is escaped for Slack and capped.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import urlencode

import httpx

from logpipe import metrics
from logpipe.redact import redact, register_secret

log = logging.getLogger("logpipe.watchdog")



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


SUBJECT_MAX = 120
MESSAGE_MAX = 600
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str) -> str:
    """Control characters (newlines among them) as spaces: a client's service name cannot forge a log line."""
    return _CONTROL.sub(" ", text)


def slack_text(text: str, limit: int) -> str:
    """Text that clients control (service names, messages) as Slack shows it literally: ``&``, ``<`` and
    ``>`` escaped, so ``<!channel>`` or ``<https://…|click>`` stay text, and capped in length."""
    return capped(one_line(text), limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ConsoleNotifier:
    name = "console"

    def send(self, alert: Alert, client: httpx.Client) -> None:
        level = logging.WARNING if alert.state == "firing" else logging.INFO
        log.log(level, "[%s] %s %s: %s", alert.state.upper(), alert.rule, capped(one_line(alert.subject), SUBJECT_MAX),
                capped(one_line(alert.message), MESSAGE_MAX))


class WebhookNotifier:
    """A generic JSON webhook: the alert's fields, one POST per transition."""

    name = "webhook"

    def __init__(self, url: str):
        self.url = url
        register_secret(url)

    def send(self, alert: Alert, client: httpx.Client) -> None:
        document = alert.as_json()
        document["subject"] = capped(alert.subject, SUBJECT_MAX)
        document["message"] = capped(alert.message, MESSAGE_MAX)
        client.post(self.url, json=document).raise_for_status()


class SlackNotifier:
    """A Slack incoming webhook, with Block Kit: severity, subject, value against threshold, since, link."""

    name = "slack"
    ICONS: ClassVar[dict[str, str]] = {"critical": ":red_circle:", "warning": ":large_orange_circle:",
                                       "info": ":large_blue_circle:"}

    def __init__(self, url: str):
        self.url = url
        register_secret(url)

    def payload(self, alert: Alert) -> dict[str, Any]:
        icon = ":white_check_mark:" if alert.state == "resolved" else self.ICONS.get(alert.severity, "")
        subject = slack_text(alert.subject, SUBJECT_MAX)
        message = slack_text(alert.message, MESSAGE_MAX)
        title = f"{icon} [{alert.state.upper()}] {alert.rule} — {subject}"
        fields = [f"*Severity*\n{alert.severity}", f"*Subject*\n{subject}",
                  f"*Value*\n{alert.value:.4g} (threshold {alert.threshold:.4g})",
                  f"*Since*\n{_iso(alert.since)}"]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": capped(title, 150), "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": message},
             "fields": [{"type": "mrkdwn", "text": text} for text in fields]},
        ]
        if alert.link:
            blocks.append({"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": alert.link}]})
        return {"text": f"{title}: {message}", "blocks": blocks}

    def send(self, alert: Alert, client: httpx.Client) -> None:
        client.post(self.url, json=self.payload(alert)).raise_for_status()


class _Outbox:
    """One notifier's bounded queue and sender thread: a channel that is slow or dead delays only itself."""

    def __init__(self, notifier: Notifier, capacity: int, timeout_s: float, max_attempts: int,
                 first_backoff_s: float, max_backoff_s: float):
        self.notifier = notifier
        self.queue: queue.Queue[Alert | None] = queue.Queue(maxsize=capacity)
        self.client = httpx.Client(timeout=timeout_s)
        self.max_attempts = max_attempts
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"logpipe-notify-{notifier.name}", daemon=True)
        self.thread.start()

    def submit(self, alert: Alert) -> bool:
        try:
            self.queue.put_nowait(alert)
            return True
        except queue.Full:
            metrics.WATCHDOG_NOTIFICATIONS.labels(notifier=self.notifier.name, outcome="dropped").inc()
            log.error("%s notification queue full: dropped %s %s", self.notifier.name, alert.state, alert.rule)
            return False

    def _run(self) -> None:
        while (alert := self.queue.get()) is not None:
            self._deliver(alert)

    def _deliver(self, alert: Alert) -> None:
        backoff = self.first_backoff_s
        name = self.notifier.name
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.notifier.send(alert, self.client)
                metrics.WATCHDOG_NOTIFICATIONS.labels(notifier=name, outcome="sent").inc()
                return
            except (httpx.HTTPError, OSError) as exc:
                metrics.WATCHDOG_NOTIFICATIONS.labels(notifier=name, outcome="retried").inc()
                log.warning("%s notification failed (attempt %d/%d): %s", name, attempt, self.max_attempts,
                            _describe(exc))
                if self.stopping.wait(backoff):
                    break
                backoff = min(backoff * 2, self.max_backoff_s)
        metrics.WATCHDOG_NOTIFICATIONS.labels(notifier=name, outcome="failed").inc()
        log.error("%s notification given up: %s %s", name, alert.state, alert.rule)

    def close(self, timeout_s: float) -> None:
        with contextlib.suppress(queue.Full):
            self.queue.put(None, timeout=timeout_s)
        self.thread.join(timeout_s)
        self.stopping.set()
        self.thread.join(timeout_s)
        self.client.close()


def _describe(exc: Exception) -> str:
    """An HTTP failure without the URL (a webhook's URL is its secret): the status, or the error's kind."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return redact(f"{type(exc).__name__}: {exc}")


class Dispatcher:
    """Each notifier sends from a queue and thread of its own, with timeouts and retries with backoff."""

    def __init__(self, notifiers: list[Notifier], capacity: int = 1000, timeout_s: float = 5.0,
                 max_attempts: int = 8, first_backoff_s: float = 0.5, max_backoff_s: float = 30.0):
        self.notifiers = notifiers
        self.outboxes = [_Outbox(n, capacity, timeout_s, max_attempts, first_backoff_s, max_backoff_s)
                         for n in notifiers]

    def submit(self, alert: Alert) -> bool:
        """Queued for every notifier; False when some notifier's queue was full."""
        return all([outbox.submit(alert) for outbox in self.outboxes])

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued for up to ``timeout_s`` per notifier, then stop retrying."""
        for outbox in self.outboxes:
            outbox.close(timeout_s)


def notifiers_for(slack_webhook_url: str, webhook_url: str) -> list[Notifier]:
    chosen: list[Notifier] = [ConsoleNotifier()]
    if slack_webhook_url:
        chosen.append(SlackNotifier(slack_webhook_url))
    if webhook_url:
        chosen.append(WebhookNotifier(webhook_url))
    return chosen
