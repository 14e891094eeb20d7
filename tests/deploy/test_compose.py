"""The compose deployment, checked without a Docker engine: schema, consistency, image hygiene."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from logpipe.config import Settings
from tests.conftest import LOGPIPE

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "spark" / "Dockerfile"]
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def _env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (DEPLOY / ".env.example").read_text().splitlines()
             if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def _interpolated() -> dict:
    """The file as `docker compose config` would see it with .env.example (passwords filled in)."""
    values = {**_env_example(), "CLICKHOUSE_PASSWORD": "secret", "GRAFANA_ADMIN_PASSWORD": "secret"}
    text = VARIABLE.sub(lambda m: values.get(m.group(1)) or (m.group(2) or ""), (DEPLOY / "docker-compose.yml")
                        .read_text())
    return yaml.safe_load(text)


def test_the_compose_file_validates_against_the_compose_specification_schema():
    # The Compose Specification's schema as vendored by check-jsonschema (a maintained PyPI package).
    schema = json.loads((resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json")
                        .read_text())
    jsonschema.validate(COMPOSE, schema)
    jsonschema.validate(_interpolated(), schema)


def test_every_variable_compose_reads_is_documented_in_env_example():
    used = set(VARIABLE.findall((DEPLOY / "docker-compose.yml").read_text()))
    assert {name for name, _ in used} <= set(_env_example())


def test_passwords_have_no_default():
    text = (DEPLOY / "docker-compose.yml").read_text()
    for secret in ("CLICKHOUSE_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert re.findall(rf"\$\{{{secret}(:?[-?][^}}]*)?\}}", text)
        assert not re.search(rf"\$\{{{secret}:?-", text), f"{secret} must not default"
    assert _env_example()["CLICKHOUSE_PASSWORD"] == "" and _env_example()["GRAFANA_ADMIN_PASSWORD"] == ""


def test_every_logpipe_variable_set_in_compose_exists_in_the_settings():
    known = {f"LOGPIPE_{name.upper()}" for name in Settings.model_fields}
    for name, service in _interpolated()["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("LOGPIPE_"):
                assert variable in known, f"{name}: {variable} is not a setting"


def _table(doc: str, marker: str) -> list[list[str]]:
    block = doc.split(f"<!-- {marker}:start -->")[1].split(f"<!-- {marker}:end -->")[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in block.strip().splitlines()]
    return rows[2:]


def test_the_ports_and_volumes_in_the_deployment_guide_match_compose():
    guide = (ROOT / "docs" / "deploy.md").read_text()
    services = _interpolated()["services"]
    published = sorted((name, port.split(":")[0]) for name, s in services.items() for port in s.get("ports", []))
    assert sorted((service, port) for service, port, _ in _table(guide, "ports-table")) == published
    env = _env_example()
    documented = sorted((service, env[re.match(r"`(\w+)`", host).group(1)], container)
                        for service, host, container in _table(guide, "volumes-table"))
    host_mounts = sorted((name, v.split(":")[0], v.split(":")[1]) for name, s in services.items()
                         for v in s.get("volumes", []) if v.startswith("/data"))
    assert documented == host_mounts
    assert "29092, 4040, 3000, 8000, 8080".replace(", ", ",") in guide.replace(" ", "")


def test_clickhouse_init_sql_is_the_schema_the_application_applies(tmp_path):
    out = tmp_path / "schema.sql"
    subprocess.run([*LOGPIPE, "schema", "export", "--out", str(out)], check=True, capture_output=True)
    assert out.read_text() == (DEPLOY / "clickhouse" / "initdb" / "001_schema.sql").read_text()
    cluster = tmp_path / "cluster.sql"
    subprocess.run([*LOGPIPE, "schema", "export", "--cluster", "logpipe", "--out", str(cluster)], check=True,
                   capture_output=True)
    assert cluster.read_text() == (DEPLOY / "clickhouse" / "cluster" / "schema.sql").read_text()
    mounts = COMPOSE["services"]["clickhouse"]["volumes"]
    assert "./clickhouse/initdb:/docker-entrypoint-initdb.d:ro" in mounts


def test_the_init_sql_runs_on_clickhouse(store):
    text = (DEPLOY / "clickhouse" / "initdb" / "001_schema.sql").read_text().replace("analytics", store.database)
    for statement in (s.strip() for s in text.split(";\n")):
        body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
        if body:
            store.command(body)
    tables = store.query_rows(f"SELECT name FROM system.tables WHERE database = '{store.database}' ORDER BY name")[1]
    assert [t for (t,) in tables] == ["alerts", "dead_letter", "fact_log", "fact_log_1m", "fact_log_1m_mv"]


def test_grafana_provisioning_is_mounted_and_refers_to_what_exists():
    grafana = COMPOSE["services"]["grafana"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "logpipe.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboards = list((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    (source,) = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "clickhouse.yaml")
                               .read_text())["datasources"]
    for path in dashboards:
        uids = set(re.findall(r'"uid": "([\w-]+)"', path.read_text())) - {"logpipe-overview"}
        assert uids == {source["uid"]}
    assert {"CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"} <= set(grafana["environment"])


def test_services_wait_for_healthy_dependencies_restart_and_have_memory_limits():
    services = COMPOSE["services"]
    total = 0
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        limit = service["mem_limit"]
        total += int(limit[:-1]) * (1024 if limit.endswith("g") else 1)
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", (name, dependency)
            assert "healthcheck" in services[dependency], dependency
    assert total <= 7 * 1024  # MiB on an 8 GB VM, leaving the OS its share
    assert services["spark"]["command"][:4] == ["logpipe", "spark", "--source", "kafka"]
    assert "/data/spark_checkpoints" in services["spark"]["environment"]["LOGPIPE_SPARK_CHECKPOINT_DIR"]
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in services["watchdog"]["volumes"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfiles_pin_their_base_images_and_install_what_they_run(dockerfile):
    text = dockerfile.read_text()
    for image in re.findall(r"^FROM\s+(\S+)", text, flags=re.M):
        assert ":" in image and not image.endswith(":latest"), image
        assert re.search(r":\d", image), f"{image}: pin a version"
    commands = re.findall(r'^CMD \["logpipe", "(\w+)"', text, flags=re.M)
    if "spark" in commands or "spark" in dockerfile.parent.name:
        assert '"/src/logpipe[spark]"' in text and "pyspark==${SPARK_VERSION}" in text
        assert "spark-sql-kafka-0-10" in text
    if dockerfile.name == "Dockerfile" and dockerfile.parent == DEPLOY:
        assert re.search(r"^USER logpipe$", text, flags=re.M)  # not root
        assert text.count("FROM ") >= 2  # multi-stage: build tools stay out of the runtime image
        assert "echarts.min.js" in text


def test_compose_images_are_pinned():
    for name, service in COMPOSE["services"].items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), (name, image)
