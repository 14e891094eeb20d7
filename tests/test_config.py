from __future__ import annotations

import re
from pathlib import Path

import pytest

from logpipe.config import CONFIG_FILE_ENV, Settings, config_table
from logpipe.events import fields_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_configuration_and_fields_tables_are_generated():
    text = README.read_text()
    table = re.search(r"<!-- config-table:start -->\n(.*?)\n<!-- config-table:end -->", text, re.S).group(1)
    assert table == config_table(), "README is stale: run scripts/readme-tables.py"
    fields = re.search(r"<!-- fields-table:start -->\n(.*?)\n<!-- fields-table:end -->", text, re.S).group(1)
    assert fields == fields_table(), "README is stale: run scripts/readme-tables.py"


def test_environment_and_toml_file(tmp_path, monkeypatch):
    config = tmp_path / "logpipe.toml"
    config.write_text('sim_rate = 123.0\nhttp_port = 9999\n')
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("LOGPIPE_HTTP_PORT", "8111")
    settings = Settings()
    assert settings.sim_rate == 123.0
    assert settings.http_port == 8111  # the environment wins over the file
    assert settings.warehouse().embedded


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("LOGPIPE_CLICKHOUSE_DATABASE", "x; DROP")
    with pytest.raises(ValueError):
        Settings()


def test_a_password_never_stands_in_the_clickhouse_url(monkeypatch):
    monkeypatch.setenv("LOGPIPE_CLICKHOUSE_URL", "http://logpipe:hunter2@clickhouse:8123")
    with pytest.raises(ValueError, match="LOGPIPE_CLICKHOUSE_PASSWORD"):
        Settings()
    monkeypatch.setenv("LOGPIPE_CLICKHOUSE_URL", "http://clickhouse:8123")
    monkeypatch.setenv("LOGPIPE_CLICKHOUSE_PASSWORD", "hunter2")
    config = Settings().warehouse()
    assert config.password == "hunter2" and "hunter2" not in repr(config)
