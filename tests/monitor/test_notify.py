"""Notifier hygiene: secrets stay out of the log, client text stays text in Slack, channels stay apart."""

from __future__ import annotations

import html
import logging
import threading
import time

from logpipe.monitor.notify import MESSAGE_MAX, SUBJECT_MAX, Alert, Dispatcher, SlackNotifier, WebhookNotifier
from logpipe.redact import REDACTED, install_redaction, register_secret
from tests.kafka_support import wait_for
from tests.monitor.test_watchdog import Recorder


def _alert(subject: str = "payment", message: str = "error_rate for payment: 61 is above 20") -> Alert:
    now = time.time()
    return Alert("firing", "error_rate", subject, "critical", 61.0, 20.0, now - 60, now, message,
                 "http://127.0.0.1:8000/")


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert, client) -> None:
        self.alerts.append(alert)


def test_text_clients_control_reaches_slack_escaped_and_capped():
    recorder = Recorder()
    try:
        hostile = "<!channel> <https://evil.example|click here> & <@U123>"
        dispatcher = Dispatcher([SlackNotifier(recorder.url)], first_backoff_s=0.05)
        dispatcher.submit(_alert(subject=hostile + " " + "s" * 500, message=f"{hostile} " + "m" * 5000))
        assert wait_for(lambda: recorder.calls, 20)
        dispatcher.close()
        body = recorder.calls[0]["body"]
        text = str(body)
        for raw in ("<!channel>", "<https://", "<@U123>", "& "):
            assert raw not in text, raw
        assert "&lt;!channel&gt;" in body["text"] and "&amp;" in body["text"]
        section = body["blocks"][1]
        assert len(html.unescape(section["text"]["text"])) == MESSAGE_MAX  # capped, then escaped
        subject_field = section["fields"][1]["text"].removeprefix("*Subject*\n")
        assert len(html.unescape(subject_field)) == SUBJECT_MAX
        assert len(body["blocks"][0]["text"]["text"]) <= 150
    finally:
        recorder.server.shutdown()


def test_a_webhook_url_never_appears_in_the_log(caplog):
    secret_path = "/services/T000/B000/" + "s3cr3t" * 4
    recorder = Recorder()
    recorder.script = ["500"] * 20
    url = recorder.url.replace("/hook", secret_path)
    closed = f"http://127.0.0.1:9{secret_path}"  # nothing listens there: a connection error
    caplog.set_level(logging.INFO)
    install_redaction()  # what every logpipe command does at start; the test's log handler gets it too
    try:
        dispatcher = Dispatcher([WebhookNotifier(url), SlackNotifier(closed)], max_attempts=3, first_backoff_s=0.01,
                                timeout_s=2)
        dispatcher.submit(_alert())
        dispatcher.close(timeout_s=20)
        logging.getLogger("logpipe.test").warning("posting to %s failed: %r", url, ValueError(closed))
        try:
            raise RuntimeError(f"could not reach {url}")
        except RuntimeError:
            logging.getLogger("logpipe.test").exception("notifier crashed")
    finally:
        recorder.server.shutdown()
    failures = [r for r in caplog.records if "notification failed" in r.getMessage()]
    assert len(failures) == 6  # three attempts on each channel, each logged
    text = caplog.text
    assert "s3cr3t" not in text and secret_path not in text
    assert text.count(REDACTED) >= 3  # the plain log line, its argument and the traceback


def test_a_dead_channel_never_delays_another():
    recorder = Recorder()
    recorder.script = ["hang"] * 10  # each call hangs longer than the notifier's timeout
    collect = Collect()
    try:
        dispatcher = Dispatcher([WebhookNotifier(recorder.url), collect], timeout_s=3, max_attempts=2)
        for subject in ("auth", "order", "payment"):
            dispatcher.submit(_alert(subject=subject))
        assert wait_for(lambda: len(collect.alerts) == 3, 10)
        # every alert reached the live channel while the dead one was still on its first
        assert len(recorder.calls) == 1
        assert [a.subject for a in collect.alerts] == ["auth", "order", "payment"]
        threading.Thread(target=dispatcher.close, daemon=True).start()
    finally:
        recorder.server.shutdown()


def test_a_registered_secret_is_redacted_in_any_log_line(caplog):
    caplog.set_level(logging.INFO)
    register_secret("tok-" + "x" * 40)
    install_redaction()
    logging.getLogger("logpipe.test").info("Authorization: Bearer %s", "tok-" + "x" * 40)
    assert "tok-" + "x" * 40 not in caplog.text and f"Bearer {REDACTED}" in caplog.text
