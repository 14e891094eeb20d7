"""The watchdog: evaluate the rules on an interval, walk each alert through pending, firing and
resolved, notify on firing and resolved only, and store every transition in analytics.alerts.

Alerts are grouped by (rule, subject): one service's outage is one alert however many checks see it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import pyarrow as pa

from logpipe import metrics
from logpipe.events import ALERT_SCHEMA
from logpipe.monitor.checks import Observer, measure_safely
from logpipe.monitor.config import MonitorConfig
from logpipe.monitor.notify import Alert, Dispatcher
from logpipe.monitor.rules import FIRES_BELOW, Rule, RuleSet

log = logging.getLogger("logpipe.watchdog")
EVENT_COOLDOWN_S = 300


@dataclass
class AlertState:
    pending_since: float
    firing_since: float | None = None
    notified: bool = False
    value: float = 0.0


class Watchdog:
    def __init__(self, rules: RuleSet, observer: Observer, dispatcher: Dispatcher, dashboard_url: str = ""):
        self.rules = rules
        self.observer = observer
        self.dispatcher = dispatcher
        self.dashboard_url = dashboard_url
        self.states: dict[tuple[str, str], AlertState] = {}
        self.last_fired: dict[tuple[str, str], float] = {}
        self.event_alerts: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        metrics.register_component("watchdog")

    # lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="logpipe-watchdog", daemon=True)
        self._thread.start()

    def run(self) -> None:
        metrics.COMPONENT_UP.labels(component="watchdog").set(1)
        while not self._stop.is_set():
            try:
                self.evaluate()
            except Exception:  # the watchdog must outlive any one bad evaluation
                log.exception("watchdog evaluation failed")
                metrics.EVENTS_ERRORS.labels(component="watchdog").inc()
            self._stop.wait(self.rules.interval_s)
        metrics.COMPONENT_UP.labels(component="watchdog").set(0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.dispatcher.close()

    # evaluation ---------------------------------------------------------------------------------
    def evaluate(self, now: float | None = None) -> list[Alert]:
        with self._lock:
            return self._evaluate(time.time() if now is None else now)

    def _evaluate(self, now: float) -> list[Alert]:
        sent: list[Alert] = []
        for rule in self.rules.rules:
            values = measure_safely(rule, self.observer)
            if values is None:
                continue  # cannot judge now: keep every alert of this rule as it is
            subjects = set(values) | {subject for (name, subject) in self.states if name == rule.name}
            for subject in sorted(subjects):
                value = values.get(subject)
                alert = self._step(rule, subject, value, now)
                if alert is not None:
                    sent.append(alert)
        metrics.WATCHDOG_ALERTS_FIRING.set(sum(1 for s in self.states.values() if s.firing_since is not None))
        metrics.EVENTS_SENT.labels(component="watchdog").inc(len(sent))
        return sent

    def _step(self, rule: Rule, subject: str, value: float | None, now: float) -> Alert | None:
        key = (rule.name, subject)
        state = self.states.get(key)
        if value is not None and rule.breached(value):
            if state is None:
                state = self.states[key] = AlertState(pending_since=now)
            state.value = value
            if state.firing_since is None and now - state.pending_since >= rule.for_s:
                state.firing_since = now
                if now - self.last_fired.get(key, float("-inf")) >= rule.cooldown_s:
                    state.notified = True
                    self.last_fired[key] = now
                    return self._emit(rule, subject, "firing", value, state.pending_since, now)
            return None
        if state is None:
            return None
        del self.states[key]
        if state.firing_since is not None and state.notified:
            return self._emit(rule, subject, "resolved", state.value if value is None else value,
                              state.firing_since, now)
        return None

    def report_event(self, rule_name: str, subject: str, state: str, message: str) -> Alert | None:
        """An alert from an event rather than a measurement (container events and log lines): a firing
        message (within the cooldown only once per rule and subject), and a resolved one for a
        condition that has an end (a container healthy again)."""
        now = time.time()
        key = (rule_name, subject)
        rule = Rule(name=rule_name, kind="failures", threshold=0, severity="critical", cooldown_s=EVENT_COOLDOWN_S)
        with self._lock:
            if state == "firing":
                metrics.WATCHDOG_CONTAINER_ALERTS.inc()
                if now - self.last_fired.get(key, float("-inf")) < rule.cooldown_s:
                    return None
                self.last_fired[key] = now
                self.event_alerts[key] = now
                return self._emit(rule, subject, "firing", 1.0, now, now, message)
            since = self.event_alerts.pop(key, None)
            if since is None:
                return None
            return self._emit(rule, subject, "resolved", 0.0, since, now, message)

    def _emit(self, rule: Rule, subject: str, state: str, value: float, since: float, now: float,
              text: str = "") -> Alert:
        comparison = "below" if rule.kind in FIRES_BELOW else "above"
        if text:
            message = text
        elif state == "firing":
            message = f"{rule.name} for {subject}: {value:.4g} is {comparison} {rule.threshold:.4g}"
        else:
            message = f"{rule.name} for {subject} is back within {rule.threshold:.4g} (now {value:.4g})"
        alert = Alert(state, rule.name, subject, rule.severity, float(value), rule.threshold, since, now, message,
                      self.dashboard_url)
        self.dispatcher.submit(alert)
        self._record(alert)
        return alert

    def _record(self, alert: Alert) -> None:
        if self.observer.store is None:
            return
        row = {"ts": [int(alert.at * 1000)], "rule": [alert.rule], "subject": [alert.subject],
               "state": [alert.state], "severity": [alert.severity], "value": [alert.value],
               "threshold": [alert.threshold], "since": [int(alert.since * 1000)], "message": [alert.message]}
        table = pa.table({name: pa.array(values) for name, values in row.items()})
        try:
            self.observer.store.insert("alerts", table.cast(ALERT_SCHEMA))
        except Exception as exc:  # a lost history row must not stop alerting
            log.warning("could not store the alert in analytics.alerts: %s", exc)


def build_watchdog(config: MonitorConfig, observer: Observer) -> Watchdog:
    from logpipe.monitor.notify import notifiers_for
    from logpipe.monitor.rules import load_rules

    dispatcher = Dispatcher(notifiers_for(config.slack_webhook_url, config.webhook_url))
    return Watchdog(load_rules(config.rules_file), observer, dispatcher, config.dashboard_url)
