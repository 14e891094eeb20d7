"""Topic names, defined once. Service request logs go to logs.<service>, application error logs of
every service to logs.error, system logs (syslog, say) to logs.system, and what cannot be processed
to logs.dlq."""

from __future__ import annotations

import re

DEFAULT_PREFIX = "logs."
ERROR_SUFFIX = "error"
SYSTEM_SUFFIX = "system"
DLQ_SUFFIX = "dlq"
OTHER_SUFFIX = "other"  # services the model does not know
SERVICE_SUFFIXES = ("auth", "order", "payment", "notify")
SENDER_HEADER = "logpipe-sender"  # the named ingest token a record came with, when it has a name
SOURCE_HEADER = "logpipe-source"  # the source that read a record (http, otlp, syslog, file)
REFUSED_HEADER = "logpipe-refused"  # why its source could not read a record: it is a dead letter


def topic_names(prefix: str = DEFAULT_PREFIX) -> list[str]:
    return [prefix + s for s in (*SERVICE_SUFFIXES, OTHER_SUFFIX, ERROR_SUFFIX, SYSTEM_SUFFIX, DLQ_SUFFIX)]


def dlq_topic(prefix: str = DEFAULT_PREFIX) -> str:
    return prefix + DLQ_SUFFIX


def error_topic(prefix: str = DEFAULT_PREFIX) -> str:
    return prefix + ERROR_SUFFIX


def system_topic(prefix: str = DEFAULT_PREFIX) -> str:
    return prefix + SYSTEM_SUFFIX


def subscription_pattern(prefix: str = DEFAULT_PREFIX) -> str:
    """Every ``<prefix>*`` topic but the DLQ: ``^logs\\.(?!dlq$).*`` written without look-ahead,
    which librdkafka's POSIX regular expressions lack. New matching topics are picked up live."""
    p = re.escape(prefix)
    return rf"^{p}([^d].*|d[^l].*|dl[^q].*|dlq.+|dl?)$"


def subscription_regex(prefix: str = DEFAULT_PREFIX) -> str:
    """The same subscription with look-ahead, for Java and Python regular expressions (Spark)."""
    return rf"{re.escape(prefix)}(?!{DLQ_SUFFIX}$).*"


Headers = list[tuple[str, bytes]] | None  # a Kafka message's headers, as confluent-kafka gives them


def header_value(headers: Headers, name: str, default: str = "") -> str:
    for key, value in headers or ():
        if key == name and value:
            return value.decode("utf-8", "replace")
    return default


def named_by_headers(headers: list[Headers] | None) -> tuple[list[str] | None, list[str] | None, dict[int, str] | None]:
    """Each message's sender and source (``kafka`` where it names none), and the reason of each message
    its source could not read, by position; all None when no message has headers."""
    if headers is None or not any(headers):
        return None, None, None
    senders = [header_value(h, SENDER_HEADER) for h in headers]
    sources = [header_value(h, SOURCE_HEADER, "kafka") for h in headers]
    refusals = {i: reason for i, h in enumerate(headers) if (reason := header_value(h, REFUSED_HEADER))}
    return senders, sources, refusals
