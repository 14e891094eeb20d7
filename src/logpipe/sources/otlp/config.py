from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OtlpConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4318
    max_body_bytes: int = 16 * 1024 * 1024
    ack_timeout_s: float = 30.0
