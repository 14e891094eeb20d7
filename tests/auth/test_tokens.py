"""Tokens: roles, hashes only in files, generation at the first start, revocation without a restart."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from logpipe.auth.config import AuthConfig
from logpipe.auth.tokens import (
    Identity,
    Role,
    TokenRegistry,
    TokensFileError,
    add_to_tokens_file,
    client_token,
    ensure_credentials,
    open_registry,
    read_tokens_file,
    revoke_from_tokens_file,
    token_hash,
)


def test_each_token_is_its_role_and_admin_may_do_everything():
    tokens = {"ingest": "i" * 40, "read": "r" * 40, "admin": "a" * 40}
    registry = TokenRegistry(AuthConfig(tokens=tokens))
    assert registry.identify("i" * 40) == Identity(Role.INGEST)
    assert registry.identify("r" * 40) == Identity(Role.READ)
    assert registry.identify(None) is None and registry.identify("") is None
    assert registry.identify("r" * 39) is None and registry.identify("r" * 40 + " ") is None
    ingest, read, admin = (registry.identify(t) for t in tokens.values())
    assert [ingest.may(r) for r in Role] == [True, False, False]
    assert [read.may(r) for r in Role] == [False, True, False]
    assert [admin.may(r) for r in Role] == [True, True, True]


def test_with_authentication_off_every_caller_is_admin():
    registry = TokenRegistry(AuthConfig(enabled=False))
    assert registry.identify(None).may(Role.ADMIN)


def test_the_first_start_generates_private_tokens_that_later_starts_reuse(tmp_path):
    config = AuthConfig(data_dir=tmp_path)
    first = ensure_credentials(config)
    assert set(first) == {"ingest", "read", "admin"} and len(set(first.values())) == 3
    assert stat.S_IMODE(config.credentials_file.stat().st_mode) == 0o600
    assert ensure_credentials(config) == first  # a restart keeps them, so links and clients keep working
    registry, plain = open_registry(config)
    assert plain == first and registry.identify(first["read"]) == Identity(Role.READ)
    assert client_token(Role.READ, tmp_path, environ={}) == first["read"]
    assert client_token(Role.INGEST, tmp_path, environ={"LOGPIPE_INGEST_TOKEN": "from-env"}) == "from-env"


def test_tokens_given_in_the_environment_are_never_written(tmp_path):
    config = AuthConfig(tokens={"ingest": "env-ingest-token"}, data_dir=tmp_path)
    plain = ensure_credentials(config)
    assert plain["ingest"] == "env-ingest-token"
    stored = json.loads(config.credentials_file.read_text())
    assert set(stored) == {"read", "admin"} and "env-ingest-token" not in config.credentials_file.read_text()


def test_a_tokens_file_holds_hashes_and_names_its_senders(tmp_path):
    path = tmp_path / "tokens.yaml"
    checkout = add_to_tokens_file(path, "checkout", Role.INGEST)
    grafana = add_to_tokens_file(path, "grafana", Role.READ)
    text = path.read_text()
    assert checkout not in text and grafana not in text and token_hash(checkout) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [(n, r) for n, r, _ in read_tokens_file(path)] == [("checkout", Role.INGEST), ("grafana", Role.READ)]
    with pytest.raises(TokensFileError):
        add_to_tokens_file(path, "checkout", Role.INGEST)
    registry = TokenRegistry(AuthConfig(tokens_file=path))
    assert registry.identify(checkout) == Identity(Role.INGEST, "checkout")
    assert registry.identify(grafana) == Identity(Role.READ, "grafana")
    # roles that the file covers get no generated token
    assert set(ensure_credentials(AuthConfig(tokens_file=path, data_dir=tmp_path))) == {"admin"}


def test_a_revoked_token_stops_working_without_a_restart(tmp_path):
    path = tmp_path / "tokens.yaml"
    token = add_to_tokens_file(path, "old-shipper", Role.INGEST)
    registry = TokenRegistry(AuthConfig(tokens_file=path))
    assert registry.identify(token) is not None
    assert revoke_from_tokens_file(path, "old-shipper")
    assert not revoke_from_tokens_file(path, "old-shipper")
    os.utime(path, (time.time() + 5, time.time() + 5))  # a file system with coarse timestamps still sees a change
    time.sleep(TokenRegistry.RELOAD_EVERY_S + 0.1)
    assert registry.identify(token) is None


@pytest.mark.parametrize("content", ["tokens: [{name: x, role: root, sha256: 'sha256:00'}]",
                                     "tokens: [{name: x, role: read}]",
                                     "tokens: [{name: x, role: read, sha256: 'plaintext-token'}]",
                                     "tokens: {"])
def test_a_broken_tokens_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "tokens.yaml"
    path.write_text(content)
    with pytest.raises(TokensFileError, match="tokens file"):
        TokenRegistry(AuthConfig(tokens_file=path))
