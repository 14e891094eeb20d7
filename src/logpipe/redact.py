"""Secrets never reach a log line: every secret the process knows is registered here, and a logging
filter on every handler replaces it, in messages, arguments and tracebacks alike.

Registered: the access tokens, webhook URLs, and passwords in store and Kafka settings. Error messages
of HTTP clients quote the URL they failed on, which is why a webhook URL is a secret as a whole.
"""

from __future__ import annotations

import logging
import threading

REDACTED = "[redacted]"
_MIN_SECRET_LENGTH = 6  # shorter strings would redact ordinary words
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Hide ``secret`` from every log line from now on."""
    if secret and len(secret) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced, longest first (a token inside a URL)."""
    if not _secrets or not text:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Renders the record's message once, redacted, so no handler formats the raw arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
