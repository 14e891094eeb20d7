"""Access tokens: three roles, tokens kept as SHA-256 hashes, compared in constant time.

- *ingest*: send logs (``POST /v1/logs`` and every other source);
- *read*: the dashboard, panels, ``/v1/query``, alerts, health and metrics;
- *admin*: everything, simulator and processor control and the workers' inserts among it.

Tokens come from the environment (``LOGPIPE_INGEST_TOKEN``, ``LOGPIPE_READ_TOKEN``,
``LOGPIPE_ADMIN_TOKEN``), from a tokens file of named tokens (their hashes only; the name of an
ingest token is recorded with the rows it sends), and, for a role that has none, from tokens
generated at the first start into the data directory (``credentials.json``, mode 0600), where local
clients such as the CLI find them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml

from logpipe.auth.config import AuthConfig
from logpipe.redact import register_secret


class Role(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


TOKEN_BYTES = 32
HASH_PREFIX = "sha256:"
UNNAMED = ""  # the sender of a role's unnamed token (environment or generated); named ones are in the file


@dataclass(frozen=True)
class Identity:
    role: Role
    name: str = UNNAMED

    def may(self, role: Role) -> bool:
        """Admin may do everything; the others only their own."""
        return self.role is Role.ADMIN or self.role is role


ANONYMOUS_ADMIN = Identity(Role.ADMIN)  # every caller, where authentication is turned off


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What files and memory keep of a token. Tokens are 256 random bits, so one SHA-256 is enough:
    there is nothing to guess that a slow hash would protect."""
    return HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    identity: Identity


class TokensFileError(ValueError):
    pass


def read_tokens_file(path: Path) -> list[tuple[str, Role, str]]:
    """(name, role, hash) of each entry of a tokens file."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TokensFileError(f"tokens file {path}: {exc}") from exc
    entries = []
    for i, item in enumerate(document.get("tokens") or []):
        try:
            name, role, digest = str(item["name"]), Role(item["role"]), str(item["sha256"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TokensFileError(f"tokens file {path}, entry {i}: needs name, role (ingest, read or admin) "
                                  f"and sha256 ({exc})") from exc
        if not digest.startswith(HASH_PREFIX) or len(digest) != len(HASH_PREFIX) + 64:
            raise TokensFileError(f"tokens file {path}, entry {name!r}: sha256 must be 'sha256:' and 64 hex digits")
        entries.append((name, role, digest))
    return entries


def add_to_tokens_file(path: Path, name: str, role: Role) -> str:
    """A new token, appended to the tokens file by its hash; returns the token (shown once, kept nowhere)."""
    entries = read_tokens_file(path) if path.exists() else []
    if any(existing == name for existing, _, _ in entries):
        raise TokensFileError(f"tokens file {path} already has a token named {name!r}; revoke it first")
    token = new_token()
    entries.append((name, role, token_hash(token)))
    _write_private(path, yaml.safe_dump({"tokens": [{"name": n, "role": str(r), "sha256": d}
                                                    for n, r, d in entries]}, sort_keys=False))
    return token


def revoke_from_tokens_file(path: Path, name: str) -> bool:
    entries = read_tokens_file(path)
    kept = [entry for entry in entries if entry[0] != name]
    if len(kept) == len(entries):
        return False
    _write_private(path, yaml.safe_dump({"tokens": [{"name": n, "role": str(r), "sha256": d}
                                                    for n, r, d in kept]}, sort_keys=False))
    return True


def _write_private(path: Path, text: str) -> None:
    """Written whole (a temporary file renamed over it), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def load_credentials(path: Path) -> dict[str, str]:
    """The generated tokens by role, or nothing when there is no readable file."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {role: token for role, token in document.items() if role in set(Role) and isinstance(token, str)}


def ensure_credentials(config: AuthConfig) -> dict[str, str]:
    """Tokens for the roles that have none in the environment or the tokens file: generated at the first
    start into the data directory (mode 0600) and reused after. Returns every role's usable token
    that this process knows in plain text (environment or generated), for the URLs it prints."""
    named_roles = {role for _, role, _ in read_tokens_file(config.tokens_file)} if config.tokens_file else set()
    known = dict(config.tokens)
    stored = load_credentials(config.credentials_file)
    missing = [role for role in Role if role not in known and role not in named_roles]
    generated = {role: stored.get(role) or new_token() for role in missing}
    if generated and any(stored.get(role) != token for role, token in generated.items()):
        _write_private(config.credentials_file, json.dumps({**stored, **generated}, indent=2) + "\n")
    with contextlib.suppress(OSError):
        os.chmod(config.credentials_file, 0o600)  # a file restored from a backup keeps its own mode otherwise
    for token in (*known.values(), *generated.values()):
        register_secret(token)
    return {**generated, **known}


class TokenRegistry:
    """Verifies presented tokens against hashes: the environment's, the generated ones and the tokens
    file's, which is read again when it changes (checked at most once a second), so a revoked token
    stops working without a restart."""

    RELOAD_EVERY_S = 1.0

    def __init__(self, config: AuthConfig, plain: dict[str, str] | None = None):
        self.config = config
        self.enabled = config.enabled
        self._fixed = [_Entry(_digest(token_hash(token)), Identity(Role(role)))
                       for role, token in (plain if plain is not None else config.tokens).items()]
        self._named: list[_Entry] = []
        self._file_mtime: float | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        path = self.config.tokens_file
        if path is None:
            return
        now = time.monotonic()
        if not force and now - self._checked_at < self.RELOAD_EVERY_S:
            return
        with self._lock:
            self._checked_at = now
            try:
                mtime = path.stat().st_mtime
            except OSError:
                mtime = None
            if not force and mtime == self._file_mtime:
                return
            entries = read_tokens_file(path) if mtime is not None else []
            self._named = [_Entry(_digest(digest), Identity(role, name)) for name, role, digest in entries]
            self._file_mtime = mtime

    def identify(self, token: str | None) -> Identity | None:
        """Who holds ``token``, or None. Every stored hash is compared, each in constant time."""
        if not self.enabled:
            return ANONYMOUS_ADMIN
        if not token:
            return None
        self._reload()
        presented = _digest(token_hash(token))
        found = None
        for entry in (*self._fixed, *self._named):
            if hmac.compare_digest(presented, entry.digest) and found is None:
                found = entry.identity
        return found

    def allow(self, token: str, role: Role) -> None:
        """One more token of ``role``: what a supervisor hands its workers, for this run only."""
        register_secret(token)
        self._fixed.append(_Entry(_digest(token_hash(token)), Identity(role)))


def open_registry(config: AuthConfig) -> tuple[TokenRegistry, dict[str, str]]:
    """The registry a serving process checks callers against, and the tokens it knows in plain text
    by role (the environment's and the generated ones: what it prints and hands on)."""
    plain = ensure_credentials(config) if config.enabled else {}
    return TokenRegistry(config, plain), plain


def _digest(hashed: str) -> bytes:
    return bytes.fromhex(hashed.removeprefix(HASH_PREFIX))


def client_token(role: Role, data_dir: Path, environ: dict[str, str] | None = None) -> str | None:
    """The token a local client (the CLI, a worker) sends for ``role``: the environment's, else the one
    generated into the data directory. An admin token serves every role."""
    environ = os.environ if environ is None else environ
    stored = load_credentials(AuthConfig(data_dir=data_dir).credentials_file)
    for candidate in (role, Role.ADMIN):
        token = environ.get(f"LOGPIPE_{candidate.upper()}_TOKEN") or stored.get(candidate)
        if token:
            register_secret(token)
            return token
    return None
