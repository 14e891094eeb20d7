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
EXTERNAL = yaml.safe_load((DEPLOY / "docker-compose.external.yml").read_text())
SECRETS = ("CLICKHOUSE_PASSWORD", "CLICKHOUSE_READER_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "KAFKA_UI_PASSWORD",
           "LOGPIPE_INGEST_TOKEN", "LOGPIPE_READ_TOKEN", "LOGPIPE_ADMIN_TOKEN")
EXTERNAL_SECRETS = ("KAFKA_EXTERNAL_PASSWORD", "KAFKA_TLS_KEY_PASSWORD")
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "spark" / "Dockerfile"]
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def _env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (DEPLOY / ".env.example").read_text().splitlines()
             if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def _interpolated(name: str = "docker-compose.yml") -> dict:
    """The file as `docker compose config` would see it with .env.example (secrets filled in)."""
    values = {**_env_example(), **{secret: "secret" for secret in SECRETS + EXTERNAL_SECRETS},
              "KAFKA_EXTERNAL_HOST": "vm.example", "KAFKA_EXTERNAL_USER": "client"}
    text = VARIABLE.sub(lambda m: values.get(m.group(1)) or (m.group(2) or ""), (DEPLOY / name).read_text())
    return yaml.safe_load(text)


def test_the_compose_file_validates_against_the_compose_specification_schema():
    # The Compose Specification's schema as vendored by check-jsonschema (a maintained PyPI package).
    schema = json.loads((resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json")
                        .read_text())
    jsonschema.validate(COMPOSE, schema)
    jsonschema.validate(_interpolated(), schema)
    jsonschema.validate(EXTERNAL, schema)
    jsonschema.validate(_interpolated("docker-compose.external.yml"), schema)


def test_every_variable_compose_reads_is_documented_in_env_example():
    for name in ("docker-compose.yml", "docker-compose.external.yml"):
        used = set(VARIABLE.findall((DEPLOY / name).read_text()))
        assert {variable for variable, _ in used} <= set(_env_example()), name


def test_secrets_have_no_default_and_are_required():
    for name, secrets in (("docker-compose.yml", SECRETS), ("docker-compose.external.yml", EXTERNAL_SECRETS)):
        text = (DEPLOY / name).read_text()
        for secret in secrets:
            uses = re.findall(rf"\$\{{{secret}(:?[-?])?[^}}]*\}}", text)
            assert uses and all(use == ":?" for use in uses), f"{name}: {secret} must be required, never defaulted"
            assert _env_example()[secret] == "", secret


def test_nothing_published_answers_without_credentials():
    services = _interpolated()["services"]
    published = {name: [port.split(":")[0] for port in service.get("ports", [])] for name, service in services.items()}
    assert {name: ports for name, ports in published.items() if ports} == {
        "gateway": ["8000", "4318"], "grafana": ["3000"], "kafka-ui": ["8080"]}
    gateway = COMPOSE["x-logpipe-env"]
    for role in ("INGEST", "READ", "ADMIN"):
        assert gateway[f"LOGPIPE_{role}_TOKEN"].startswith(f"${{LOGPIPE_{role}_TOKEN:?")
    assert all("LOGPIPE_AUTH_ENABLED" not in s.get("environment", {}) for s in services.values())
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    kafka_ui = services["kafka-ui"]["environment"]
    assert kafka_ui["AUTH_TYPE"] == "LOGIN_FORM" and kafka_ui["SPRING_SECURITY_USER_PASSWORD"] == "secret"
    kafka = services["kafka"]["environment"]
    assert "EXTERNAL" not in kafka["KAFKA_LISTENERS"]
    protocols = set(kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols == {"CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"}


def test_the_external_kafka_listener_is_sasl_scram_over_tls():
    kafka = _interpolated("docker-compose.external.yml")["services"]["kafka"]
    assert kafka["ports"] == ["29092:29092"]
    env = kafka["environment"]
    protocols = dict(pair.split(":") for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols["EXTERNAL"] == "SASL_SSL" and env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert "ScramLoginModule" in env["KAFKA_LISTENER_NAME_EXTERNAL_SCRAM___SHA___512_SASL_JAAS_CONFIG"]
    assert env["KAFKA_ADVERTISED_LISTENERS"].endswith("EXTERNAL://vm.example:29092")
    init = EXTERNAL["services"]["kafka-scram-init"]
    script = init["command"][0]
    assert "--add-config-file" in script and "$$KAFKA_EXTERNAL_PASSWORD" in script  # from the environment, via a file
    assert "--add-config " not in script


def test_the_clickhouse_reader_is_select_only_with_the_query_limits():
    import xml.etree.ElementTree as ET

    from logpipe.warehouse.config import QueryLimits

    root = ET.parse(DEPLOY / "clickhouse" / "users.d" / "logpipe.xml").getroot()
    profile = root.find("profiles/logpipe_reader")
    limits = QueryLimits()
    assert profile.findtext("readonly") == "1"
    for name, value in limits.settings().items():
        assert profile.findtext(name) == str(int(value) if isinstance(value, float) else value), name
    user = root.find("users/logpipe_reader")
    assert user.find("password").get("from_env") == "CLICKHOUSE_READER_PASSWORD"
    assert [q.text for q in user.findall("grants/query")] == ["GRANT SELECT ON analytics.*",
                                                              "GRANT dictGet ON analytics.*"]  # the panels' lookups
    clickhouse = COMPOSE["services"]["clickhouse"]
    assert "./clickhouse/users.d:/etc/clickhouse-server/users.d:ro" in clickhouse["volumes"]
    assert clickhouse["environment"]["CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT"] == 0
    env = COMPOSE["x-logpipe-env"]
    assert env["LOGPIPE_CLICKHOUSE_READ_USER"] == "logpipe_reader"
    assert "@" not in env["LOGPIPE_CLICKHOUSE_URL"]  # no password in a URL


def test_the_watchdog_reaches_docker_only_through_a_proxy_of_read_endpoints():
    services = COMPOSE["services"]
    watchdog = services["watchdog"]
    assert not any("docker.sock" in volume for volume in watchdog.get("volumes", []))
    assert watchdog["environment"]["LOGPIPE_DOCKER_URL"] == "tcp://docker-proxy:2375"
    proxy = services["docker-proxy"]
    assert proxy["volumes"] == ["/var/run/docker.sock:/var/run/docker.sock:ro"]
    allowed = {name for name, value in proxy["environment"].items() if value == 1}
    assert allowed == {"EVENTS", "CONTAINERS", "PING", "VERSION"} and proxy["environment"]["POST"] == 0
    assert [name for name, s in services.items() if any("docker.sock" in v for v in s.get("volumes", []))] == [
        "docker-proxy"]


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
    assert "ufw allow 3000,4318,8000,8080/tcp" in guide


def test_clickhouse_init_sql_is_the_schema_the_application_applies(tmp_path):
    out = tmp_path / "schema.sql"
    dictionary_user = ["--dictionary-user", COMPOSE["x-logpipe-env"]["LOGPIPE_CLICKHOUSE_DICTIONARY_USER"]]
    subprocess.run([*LOGPIPE, "schema", "export", *dictionary_user, "--out", str(out)], check=True,
                   capture_output=True)
    assert out.read_text() == (DEPLOY / "clickhouse" / "initdb" / "001_schema.sql").read_text()
    cluster = tmp_path / "cluster.sql"
    subprocess.run([*LOGPIPE, "schema", "export", "--cluster", "logpipe", *dictionary_user, "--out", str(cluster)],
                   check=True, capture_output=True)
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
    assert [t for (t,) in tables] == [
        "alerts", "dead_letter", "dead_letter_replay", "dict_host", "dict_service", "dict_status",
        "dim_endpoint", "dim_endpoint_seen", "dim_endpoint_seen_mv", "dim_host", "dim_host_seen",
        "dim_host_seen_mv", "dim_service", "dim_service_catalog", "dim_service_seen", "dim_service_seen_mv",
        "dim_status", "dim_time", "fact_log", "fact_log_1m", "fact_log_1m_source_mv", "fact_log_endpoint_1h",
        "fact_log_endpoint_1h_mv", "fact_log_errors_1m", "fact_log_errors_1m_mv", "fact_log_ingest_1m",
        "fact_log_ingest_1m_mv", "fact_log_latency_1m", "fact_log_latency_1m_mv", "fact_log_status_1m",
        "fact_log_status_1m_mv", "fact_log_system_1m", "fact_log_system_1m_mv", "fact_log_trace",
        "fact_log_trace_mv"]
    assert store.scalar(f"SELECT count() FROM {store.database}.dim_status") == 501


def test_the_dictionaries_load_as_a_local_passwordless_user_that_reads_only_their_tables():
    import xml.etree.ElementTree as ET

    from logpipe.warehouse.store import schema_statements

    env = COMPOSE["x-logpipe-env"]
    name = env["LOGPIPE_CLICKHOUSE_DICTIONARY_USER"]
    user = ET.parse(DEPLOY / "clickhouse" / "users.d" / "logpipe.xml").getroot().find(f"users/{name}")
    assert user.find("no_password") is not None
    assert sorted(ip.text for ip in user.findall("networks/ip")) == ["127.0.0.1", "::1"]
    assert user.findtext("profile") == "logpipe_reader"  # readonly
    schema = dict(schema_statements("analytics", 30, name))
    views = {re.search(r"CREATE VIEW IF NOT EXISTS analytics\.(\w+)", sql).group(1): sql
             for sql in schema.values() if "CREATE VIEW" in sql}
    read: set[str] = set()
    for sql in (sql for sql in schema.values() if "CREATE DICTIONARY" in sql):
        assert f"USER '{name}' QUERY" in sql
        for table in re.findall(r"FROM analytics\.(\w+)", sql):
            read.add(table)
            read.update(re.findall(r"FROM analytics\.(\w+)", views.get(table, "")))
    assert sorted(q.text for q in user.findall("grants/query")) == sorted(f"GRANT SELECT ON analytics.{t}"
                                                                          for t in read)
    init = (DEPLOY / "clickhouse" / "initdb" / "001_schema.sql").read_text()
    assert init.count(f"USER '{name}'") == 3


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
    assert {"CLICKHOUSE_READER_USER", "CLICKHOUSE_READER_PASSWORD"} <= set(grafana["environment"])
    assert source["jsonData"]["username"] == "${CLICKHOUSE_READER_USER}"
    assert source["secureJsonData"]["password"] == "${CLICKHOUSE_READER_PASSWORD}"
    assert grafana["environment"]["CLICKHOUSE_READER_USER"] == "logpipe_reader"


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
