"""Settings, read only at the entry point (the CLI): environment ``LOGPIPE_*`` and an optional TOML file.

Library code takes the plain per-stage config objects that ``Settings`` builds. The README's
configuration table is generated from this model (``logpipe config docs``); a test fails when it is stale.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from logpipe.auth.config import AuthConfig
from logpipe.auth.tokens import Role, client_token
from logpipe.gateway.config import GatewayConfig
from logpipe.monitor.config import MonitorConfig
from logpipe.processing.config import ProcessorConfig
from logpipe.processing.spark.config import SparkConfig
from logpipe.simulator.config import SimulatorConfig
from logpipe.sources.files.config import FileSourceConfig
from logpipe.sources.otlp.config import OtlpConfig
from logpipe.sources.syslog.config import SyslogConfig
from logpipe.transport.kafka import KafkaConfig
from logpipe.warehouse.config import QueryLimits, WarehouseConfig
from logpipe.warehouse.dimensions import DimensionConfig

CONFIG_FILE_ENV = "LOGPIPE_CONFIG"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOGPIPE_", env_nested_delimiter="__", extra="ignore")

    http_host: str = Field("127.0.0.1", description="Address the gateway (API and dashboard) listens on.")
    http_port: int = Field(8000, ge=0, le=65535, description="Port of the gateway.")
    process_port: int = Field(8001, ge=0, le=65535, description=(
        "Port of `logpipe process` (health, metrics, and the store it owns); worker i of `--workers N` "
        "serves the port plus 1 plus i."))
    data_dir: Path = Field(Path("./data"), description="Where the embedded store and local state live.")
    clickhouse_url: str = Field(
        "", description="Empty: the embedded ClickHouse (chdb) under the data dir. `http(s)://host:8123` selects "
        "a ClickHouse server (its user and password in the two settings below, never in the URL); "
        "`logpipe+http://host:port` the embedded store of another logpipe process (how processor workers share "
        "one).")
    clickhouse_database: str = Field("analytics", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                     description="Database holding fact_log, dead_letter and the rollups.")
    clickhouse_user: str = Field("default", description="ClickHouse server user that writes (inserts, schema).")
    clickhouse_password: SecretStr | None = Field(None, description="Its password (kept out of the URL).")
    clickhouse_read_user: str = Field("", description=(
        "ClickHouse server user for user queries and panels: `SELECT` on the analytics database only, with "
        "a settings profile of limits (`deploy/clickhouse/users.d/logpipe.xml`); empty: the writing user's "
        "session, read-only."))
    clickhouse_read_password: SecretStr | None = Field(None, description="Its password.")
    retention_days: int = Field(30, ge=1, description="TTL of fact and dead-letter rows, in days.")
    clickhouse_dictionary_user: str = Field("", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$", description=(
        "ClickHouse server user the dictionaries over the dimension tables read them as: no password, "
        "local connections only, SELECT on those tables (`deploy/clickhouse/users.d/logpipe.xml`); empty: "
        "the server's `default` user."))
    dim_sync_s: float = Field(DimensionConfig.sync_s, ge=0, description=(
        "Seconds between dimension syncs (service catalog, calendar, dictionary reload), run by every "
        "engine; 0 turns them off (the dimension tables still follow the stream)."))
    service_catalog: Path | None = Field(None, description=(
        "YAML file of tier, team and owner per service (docs/dimensions.md), applied at the next sync "
        "after it changes."))

    sim_enabled: bool = Field(True, description="Run the built-in traffic simulator in `logpipe up`.")
    sim_rate: float = Field(2000.0, ge=0, description="Simulated events per second (daily mean when diurnal).")
    sim_seed: int | None = Field(None, description="Seed for reproducible traffic; random when unset.")
    sim_speed: float = Field(1.0, gt=0, description="Simulated clock speed: 1440 replays a day in a minute.")
    sim_diurnal: bool = Field(True, description="Shape the rate by the time-of-day curve.")

    # the processor's defaults are ProcessorConfig's, so the library and the command cannot disagree
    batch_max_rows: int = Field(ProcessorConfig.batch_max_rows, ge=1,
                                description="Flush to ClickHouse when a batch reaches this many rows.")
    insert_max_bytes: int = Field(ProcessorConfig.insert_max_bytes, ge=1 << 20, description=(
        "Flush to ClickHouse when a batch's normalized rows reach this many bytes (Arrow), whatever their count; "
        "the embedded processor's bound (the Kafka processor bounds a polled batch by its messages' bytes)."))
    flush_interval_s: float = Field(ProcessorConfig.flush_interval_s, gt=0,
                                    description="Flush a batch at the latest when it is this old.")
    queue_max_events: int = Field(ProcessorConfig.queue_max_events, ge=1000,
                                  description="Events buffered between intake and processor before backpressure.")
    queue_max_bytes: int = Field(ProcessorConfig.queue_max_bytes, ge=1 << 20, description=(
        "Bytes of payload buffered between intake and processor before backpressure (and 429)."))
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description=(
        "Largest accepted POST /v1/logs body, counted after decompression (413 past it)."))
    max_future_s: float = Field(ProcessorConfig.max_future_s, ge=0, description=(
        "How far ahead of now an event's time may be (clock skew); a later one is a dead letter. Events "
        "older than the retention are dead letters too: the TTL would drop them."))
    max_event_bytes: int = Field(1 << 20, ge=1024, description=(
        "Largest accepted event, as Kafka's message.max.bytes: a larger one is a 413 for its request over "
        "HTTP, and a dead letter (its first bytes kept) from Kafka."))
    ack_timeout_s: float = Field(30.0, gt=0, description="How long POST /v1/logs waits for durability before 503.")
    idempotency_keep_s: float = Field(600.0, gt=0, description=(
        "How long a process remembers an Idempotency-Key: a retry within it gets the first answer."))

    auth_enabled: bool = Field(True, description=(
        "Require a token on every route but `/ping`. Can be turned off only while the gateway listens on a "
        "loopback address."))
    ingest_token: SecretStr | None = Field(None, description=(
        "Token of the ingest role (`POST /v1/logs`); generated into `<data dir>/credentials.json` when unset."))
    read_token: SecretStr | None = Field(None, description=(
        "Token of the read role (dashboard, panels, `/v1/query`, alerts, health, metrics); generated when unset."))
    admin_token: SecretStr | None = Field(None, description=(
        "Token of the admin role (everything, simulator and processor control and worker inserts among it); "
        "generated when unset."))
    tokens_file: Path | None = Field(None, description=(
        "YAML file of named tokens, kept by their SHA-256 only (`logpipe token add`); an ingest token's name "
        "is recorded in each row's `sender`. Read again when it changes."))
    query_timeout_s: float = Field(QueryLimits.timeout_s, gt=0, description="Longest a user query may run.")
    query_max_memory_bytes: int = Field(QueryLimits.max_memory_bytes, ge=1 << 20,
                                        description="Most memory a user query may take.")
    query_max_result_rows: int = Field(QueryLimits.max_result_rows, ge=1,
                                       description="Most rows a user query may return (an error past it).")
    query_max_result_bytes: int = Field(QueryLimits.max_result_bytes, ge=1024,
                                        description="Most bytes a user query may return (an error past it).")
    query_max_concurrent: int = Field(QueryLimits.max_concurrent, ge=1, description=(
        "User queries and panels running at once; a query beyond waits up to 5 s, then gets 429."))

    otlp_enabled: bool = Field(True, description="Run the OTLP/HTTP logs receiver (`POST /v1/logs`, protobuf "
                               "or JSON) in `logpipe up` and `logpipe gateway`; it takes the ingest role's token.")
    otlp_host: str = Field("127.0.0.1", description="Address the OTLP receiver listens on.")
    otlp_port: int = Field(4318, ge=0, le=65535, description="Port of the OTLP receiver (OTLP/HTTP's own).")
    syslog_enabled: bool = Field(True, description="Run the syslog listener (RFC 5424 and 3164, UDP and TCP).")
    syslog_host: str = Field("127.0.0.1", description="Address the syslog listener listens on.")
    syslog_port: int = Field(5514, ge=0, le=65535, description="Port of the syslog listener, UDP and TCP.")
    syslog_allowed_networks: list[str] = Field(["127.0.0.0/8", "::1/128"], description=(
        "Networks (CIDR) whose syslog messages are heard; syslog carries no credentials, so others are "
        "counted and ignored. A JSON list in the environment."))
    files: list[FileSourceConfig] = Field(default_factory=list, description=(
        "Log files `logpipe up` reads: a `[[files]]` table per source in the TOML file, or a JSON list "
        "(`[{\"include\": [\"/var/log/nginx/*.log\"], \"parser\": \"nginx\"}]`); fields in docs/sources.md."))

    kafka_bootstrap: str = Field("", description="Kafka bootstrap servers; empty keeps the in-process channel.")
    kafka_topic_prefix: str = Field("logs.", description="Prefix of the log topics (logs.auth, ..., logs.dlq).")
    kafka_partitions: int = Field(3, ge=1, description="Partitions of topics logpipe creates.")
    kafka_group_id: str = Field("logpipe-processor", description="Consumer group of the processor.")
    kafka: dict[str, str] = Field(default_factory=dict, description=(
        "librdkafka properties passed through: `LOGPIPE_KAFKA__SASL_MECHANISM=PLAIN` "
        "(underscores become dots) or a `[kafka]` table in the TOML file."))

    spark_master: str = Field("local[2]", description="Spark master of `logpipe spark` (`local[N]`, `spark://...`).")
    spark_source: str = Field("auto", pattern="^(auto|kafka|python)$", description=(
        "`kafka`: Spark's Kafka connector; `python`: logpipe's Python data source over confluent-kafka; "
        "`auto`: the connector when its jars are on the classpath."))
    spark_checkpoint_dir: Path | None = Field(None, description="Spark checkpoint location; default "
                                              "`<data dir>/spark_checkpoints`.")
    spark_trigger_s: float = Field(1.0, gt=0, description="Micro-batch trigger interval of the Spark query.")
    spark_max_offsets_per_trigger: int = Field(500_000, ge=0, description=(
        "Most Kafka offsets per micro-batch (0: no limit)."))
    spark_starting_offsets: str = Field("earliest", pattern="^(earliest|latest)$",
                                        description="Where a new Spark query (no checkpoint yet) starts.")
    spark_driver_memory: str = Field(SparkConfig.driver_memory, pattern="^[0-9]+[kmgt]?$", description=(
        "Heap of the Spark driver JVM that `logpipe spark` starts (in `local[N]` it runs the executors too; "
        "a micro-batch of 500,000 offsets ran out of the 1g default). Under spark-submit, pass `--driver-memory`."))

    watch_enabled: bool = Field(True, description="Run the watchdog inside `logpipe up`.")
    watch_rules: Path | None = Field(None, description="Alert rules YAML; default: the documented rules shipped "
                                     "with logpipe (`src/logpipe/monitor/rules.yaml`).")
    slack_webhook_url: str = Field("", description="Slack incoming webhook for alerts (Block Kit messages).")
    alert_webhook_url: str = Field("", description="Generic JSON webhook for alerts.")
    dashboard_url: str = Field("", description="Dashboard link in alert messages; default the gateway's `/`.")
    docker_url: str = Field("unix:///var/run/docker.sock", description=(
        "Docker Engine the watchdog follows for container events and logs (`logpipe watch`); skipped when "
        "the socket is absent."))

    @model_validator(mode="after")
    def _no_password_in_the_url(self) -> Settings:
        if urlparse(self.clickhouse_url).password:
            raise ValueError("LOGPIPE_CLICKHOUSE_URL holds a password: put it in LOGPIPE_CLICKHOUSE_PASSWORD "
                             "(a URL ends up in logs and process listings)")
        return self

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> Settings:
        if not self.auth_enabled and not is_loopback(self.http_host):
            raise ValueError(f"LOGPIPE_AUTH_ENABLED=false needs a loopback LOGPIPE_HTTP_HOST, not {self.http_host!r}: "
                             "anyone who reaches the port could ingest, query and control the pipeline")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    def kafka_config(self) -> KafkaConfig:
        properties = {k.replace("_", ".") if "." not in k else k: v for k, v in self.kafka.items()}
        return KafkaConfig(bootstrap=self.kafka_bootstrap, topic_prefix=self.kafka_topic_prefix,
                           partitions=self.kafka_partitions, group_id=self.kafka_group_id, properties=properties)

    def warehouse(self) -> WarehouseConfig:
        limits = QueryLimits(timeout_s=self.query_timeout_s, max_memory_bytes=self.query_max_memory_bytes,
                             max_result_rows=self.query_max_result_rows, max_result_bytes=self.query_max_result_bytes,
                             max_concurrent=self.query_max_concurrent)
        owner_token = ""
        if self.clickhouse_url.startswith("logpipe+"):  # another process's store, called with the admin role
            owner_token = _secret(self.admin_token) or client_token(Role.ADMIN, self.data_dir) or ""
        return WarehouseConfig(url=self.clickhouse_url, data_dir=self.data_dir, database=self.clickhouse_database,
                               retention_days=self.retention_days, user=self.clickhouse_user,
                               password=_secret(self.clickhouse_password),
                               read_user=self.clickhouse_read_user,
                               read_password=_secret(self.clickhouse_read_password), limits=limits,
                               api_token=owner_token, dictionary_user=self.clickhouse_dictionary_user)

    def dimensions(self) -> DimensionConfig:
        return DimensionConfig(sync_s=self.dim_sync_s, catalog=self.service_catalog)

    def auth(self) -> AuthConfig:
        tokens = {role: _secret(token) for role, token in
                  ((Role.INGEST, self.ingest_token), (Role.READ, self.read_token), (Role.ADMIN, self.admin_token))
                  if token is not None and token.get_secret_value()}
        return AuthConfig(enabled=self.auth_enabled, tokens=tokens, tokens_file=self.tokens_file,
                          data_dir=self.data_dir)

    def secrets(self) -> list[str]:
        """Every secret in the settings, for the log redaction."""
        found = [_secret(value) for value in (self.ingest_token, self.read_token, self.admin_token,
                                              self.clickhouse_password, self.clickhouse_read_password)]
        found += [self.slack_webhook_url, self.alert_webhook_url]
        found += [value for key, value in self.kafka.items() if "password" in key or "secret" in key]
        return [value for value in found if value]

    def simulator(self) -> SimulatorConfig:
        return SimulatorConfig(rate=self.sim_rate, seed=self.sim_seed, speed=self.sim_speed,
                               diurnal=self.sim_diurnal, running=self.sim_enabled)

    def processor(self) -> ProcessorConfig:
        return ProcessorConfig(batch_max_rows=self.batch_max_rows, insert_max_bytes=self.insert_max_bytes,
                               flush_interval_s=self.flush_interval_s,
                               queue_max_events=self.queue_max_events, queue_max_bytes=self.queue_max_bytes,
                               max_event_bytes=self.max_event_bytes, max_future_s=self.max_future_s,
                               retention_days=self.retention_days)

    def spark(self) -> SparkConfig:
        return SparkConfig(checkpoint_dir=self.spark_checkpoint_dir or self.data_dir / "spark_checkpoints",
                           master=self.spark_master, source=self.spark_source, trigger_s=self.spark_trigger_s,
                           max_offsets_per_trigger=self.spark_max_offsets_per_trigger or None,
                           starting_offsets=self.spark_starting_offsets, driver_memory=self.spark_driver_memory)

    def monitor(self) -> MonitorConfig:
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::") else self.http_host
        return MonitorConfig(rules_file=self.watch_rules, slack_webhook_url=self.slack_webhook_url,
                             webhook_url=self.alert_webhook_url,
                             dashboard_url=self.dashboard_url or f"http://{host}:{self.http_port}/")

    def otlp(self) -> OtlpConfig:
        return OtlpConfig(enabled=self.otlp_enabled, host=self.otlp_host, port=self.otlp_port,
                          max_body_bytes=self.max_body_bytes, ack_timeout_s=self.ack_timeout_s)

    def syslog(self) -> SyslogConfig:
        return SyslogConfig(enabled=self.syslog_enabled, host=self.syslog_host, port=self.syslog_port,
                            allowed_networks=tuple(self.syslog_allowed_networks),
                            max_message_bytes=self.max_event_bytes)

    def gateway(self) -> GatewayConfig:
        return GatewayConfig(host=self.http_host, port=self.http_port, max_body_bytes=self.max_body_bytes,
                             max_event_bytes=self.max_event_bytes, ack_timeout_s=self.ack_timeout_s)


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_table() -> str:
    """The README's configuration table, generated from ``Settings``."""
    lines = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default: Any = info.default if info.default_factory is None else info.default_factory()
        shown = "(unset)" if default in (None, "", {}) else f"`{default}`"
        lines.append(f"| `LOGPIPE_{name.upper()}` | {shown} | {info.description} |")
    return "\n".join(lines)
