from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SyslogConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 5514  # UDP and TCP; unprivileged (514 needs root)
    # syslog carries no credentials: only peers in these networks are heard
    allowed_networks: tuple[str, ...] = field(default=("127.0.0.0/8", "::1/128"))
    max_message_bytes: int = 1 << 20  # a longer message is a dead letter holding its first bytes
    batch_max_messages: int = 50_000
    batch_max_bytes: int = 8 << 20
    flush_interval_s: float = 0.2
