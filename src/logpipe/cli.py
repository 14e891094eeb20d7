"""The ``logpipe`` command: thin wrappers that read settings and call the stages."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

from logpipe.auth.tokens import Role, client_token
from logpipe.config import Settings, config_table
from logpipe.memory import configure_allocators
from logpipe.redact import install_redaction, register_secret

app = typer.Typer(help="logpipe: log ETL and monitoring pipeline.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
schema_app = typer.Typer(help="ClickHouse schema.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
app.add_typer(config_app, name="config")
grafana_app = typer.Typer(help="Grafana provisioning.", no_args_is_help=True)
app.add_typer(grafana_app, name="grafana")
token_app = typer.Typer(help="Named access tokens (the tokens file).", no_args_is_help=True)
app.add_typer(token_app, name="token")
GRAFANA_DASHBOARD = Path("deploy/grafana/dashboards/logpipe.json")
console = Console(stderr=True)


@app.callback()
def _process_setup() -> None:
    """Runs before every command."""
    configure_allocators()


def _settings(**overrides: object) -> Settings:
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    for secret in settings.secrets():
        register_secret(secret)
    return settings


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    install_redaction()
    for noisy in ("uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _auth_headers(settings: Settings, role: Role) -> dict[str, str]:
    """What a local client sends: the role's token from the environment, else the generated one."""
    token = client_token(role, settings.data_dir)
    return {"Authorization": f"Bearer {token}"} if token else {}


class StatusLine(threading.Thread):
    """Events/s, inserted, dead-lettered and freshness: a live line on a terminal, a log line otherwise."""

    def __init__(self, pipeline, interval_s: float):
        super().__init__(name="logpipe-status", daemon=True)
        self.pipeline = pipeline
        self.interval_s = interval_s
        self.stopped = threading.Event()

    def render(self, previous: dict, current: dict, elapsed: float) -> str:
        rate = (current["inserted"] - previous["inserted"]) / elapsed
        return (f"inserted {rate:,.0f} ev/s | total {current['inserted']:,.0f} | "
                f"dead-lettered {current['dead_lettered']:,.0f} | queued {current['queued']:,.0f} | "
                f"freshness {current['freshness_s']:.2f}s")

    def run(self) -> None:
        previous, last = self.pipeline.stats(), time.monotonic()
        live = sys.stderr.isatty()
        while not self.stopped.wait(self.interval_s):
            current, now = self.pipeline.stats(), time.monotonic()
            line = self.render(previous, current, now - last)
            if live:
                console.print(line, end="\r", highlight=False, soft_wrap=True)
            else:
                logging.getLogger("logpipe.status").info(line)
            previous, last = current, now


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Listen address (LOGPIPE_HTTP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (LOGPIPE_HTTP_PORT).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (LOGPIPE_DATA_DIR).")] = None,
    rate: Annotated[float | None, typer.Option(help="Simulated events/s (LOGPIPE_SIM_RATE).")] = None,
    no_simulator: Annotated[bool, typer.Option("--no-simulator", help="Start with the simulator paused.")] = False,
    kafka: Annotated[str | None, typer.Option(help="Kafka bootstrap servers (LOGPIPE_KAFKA_BOOTSTRAP): "
                                              "put Kafka between gateway and processor.")] = None,
    status_interval: Annotated[float, typer.Option(help="Seconds between status lines.")] = 2.0,
) -> None:
    """Run gateway, simulator, processor and store in one process until SIGINT/SIGTERM."""
    _logging()
    settings = _settings(http_host=host, http_port=port, data_dir=data_dir, sim_rate=rate,
                         sim_enabled=False if no_simulator else None, kafka_bootstrap=kafka)
    _serve(settings, run_processor=True, status_interval=status_interval)


@app.command()
def gateway(
    kafka: Annotated[str | None, typer.Option(help="Kafka bootstrap servers (LOGPIPE_KAFKA_BOOTSTRAP).")] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (LOGPIPE_HTTP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (LOGPIPE_HTTP_PORT).")] = None,
    rate: Annotated[float | None, typer.Option(help="Simulated events/s (LOGPIPE_SIM_RATE).")] = None,
    no_simulator: Annotated[bool, typer.Option("--no-simulator", help="Start with the simulator paused.")] = False,
) -> None:
    """Run the ingest API and simulator, producing to Kafka (run `logpipe process` to consume)."""
    _logging()
    settings = _settings(http_host=host, http_port=port, sim_rate=rate, kafka_bootstrap=kafka,
                         sim_enabled=False if no_simulator else None)
    if not settings.kafka_bootstrap:
        raise typer.BadParameter("set --kafka or LOGPIPE_KAFKA_BOOTSTRAP", param_hint="--kafka")
    _serve(settings, run_processor=False, status_interval=10.0)


@app.command()
def tail(
    paths: Annotated[list[str], typer.Argument(help="Files or glob patterns (quote them; ** crosses directories).")],
    parser: Annotated[str, typer.Option(help="json, nginx or plain.")] = "plain",
    service: Annotated[str, typer.Option(help="The events' service; default: nginx, or the file's name.")] = "",
    start_at: Annotated[str, typer.Option("--from", help="beginning or end: where a file with no checkpoint "
                                                        "is read from.")] = "beginning",
    multiline_start: Annotated[str | None, typer.Option(help="Regular expression that begins a record; "
                                                            "other lines join the record before.")] = None,
    name: Annotated[str, typer.Option(help="Name of the checkpoints (<data dir>/file_checkpoints/NAME.json).")]
    = "tail",
    port: Annotated[int | None, typer.Option(help="Port of its API, /healthz and /metrics "
                                                  "(LOGPIPE_HTTP_PORT).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (LOGPIPE_DATA_DIR).")] = None,
) -> None:
    """Follow log files into ClickHouse until SIGINT/SIGTERM: a pipeline of this one file source (no
    simulator, watchdog, OTLP or syslog), writing where LOGPIPE_CLICKHOUSE_URL says."""
    from logpipe.sources.files.config import FileSourceConfig

    if parser not in ("json", "nginx", "plain"):
        raise typer.BadParameter("json, nginx or plain", param_hint="--parser")
    if start_at not in ("beginning", "end"):
        raise typer.BadParameter("beginning or end", param_hint="--from")
    _logging()
    source = FileSourceConfig(include=list(paths), parser=parser, service=service, name=name,  # type: ignore[arg-type]
                              start_at=start_at, multiline_start=multiline_start)  # type: ignore[arg-type]
    settings = _settings(http_port=port, data_dir=data_dir, files=[source], sim_enabled=False, watch_enabled=False,
                         otlp_enabled=False, syslog_enabled=False)
    _serve(settings, run_processor=True, status_interval=2.0)


def _serve(settings: Settings, run_processor: bool, status_interval: float) -> None:
    import uvicorn

    from logpipe.apps.up import Pipeline
    from logpipe.auth.tokens import open_registry
    from logpipe.gateway.app import create_app

    tokens, plain = open_registry(settings.auth())
    pipeline = Pipeline(settings, run_processor=run_processor, tokens=tokens)
    # log_config=None: uvicorn logs through the root logger's handlers, and so through their redaction
    server = uvicorn.Server(uvicorn.Config(
        create_app(pipeline.services(), tokens), host=settings.http_host, port=settings.http_port, log_level="warning",
        log_config=None, timeout_graceful_shutdown=int(settings.ack_timeout_s) + 5))
    base = _api_base(settings)
    transport = f"kafka {settings.kafka_bootstrap}" if settings.kafka_bootstrap else "in-process channel"
    console.print(f"[bold]logpipe[/bold]  api {base}/openapi.json  metrics {base}/metrics  {transport}  "
                  f"store {settings.clickhouse_url or settings.warehouse().embedded_path}", highlight=False,
                  soft_wrap=True)
    console.print(_login_line(settings, plain), highlight=False, soft_wrap=True, markup=False)
    status = StatusLine(pipeline, status_interval)
    status.start()
    # uvicorn re-raises the signal it caught once it has shut down; a no-op handler keeps that
    # from killing us before the exit code is ours to set.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run()
    status.stopped.set()
    if not server.started:
        raise typer.Exit(1)
    console.print("\nlogpipe stopped cleanly", highlight=False)


@app.command()
def simulate(
    rate: Annotated[float, typer.Option(help="Events per second; 0 for as fast as possible.")] = 2000.0,
    duration: Annotated[float, typer.Option(help="Seconds of traffic to produce.")] = 10.0,
    output: Annotated[str, typer.Option("--output", "-o", help="'-' (stdout), a file path, or an http(s) URL "
                                        "of a gateway's /v1/logs.")] = "-",
    format: Annotated[str, typer.Option(help="Output format (ndjson).")] = "ndjson",
    seed: Annotated[int, typer.Option(help="Seed for reproducible traffic.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Events per batch (per HTTP request).")] = 1000,
) -> None:
    """Produce simulated service logs as NDJSON to stdout, a file, or a gateway."""
    from logpipe.codec.ndjson import encode_ndjson
    from logpipe.simulator.generator import TrafficGenerator

    if format != "ndjson":
        raise typer.BadParameter("only ndjson is supported", param_hint="--format")
    generator = TrafficGenerator(seed, id_prefix=f"sim-{seed:x}-{int(time.time() * 1000):x}-")
    total = int(rate * duration) if rate > 0 else None
    start_wall, start_sim = time.monotonic(), time.time()
    sent = 0
    settings = _settings()
    http = (httpx.Client(timeout=60, headers=_auth_headers(settings, Role.INGEST))
            if output.startswith(("http://", "https://")) else None)
    sink = None if http else (sys.stdout.buffer if output == "-" else open(output, "wb"))  # noqa: SIM115
    try:
        while (total is None and time.monotonic() - start_wall < duration) or (total is not None and sent < total):
            n = batch_size if total is None else min(batch_size, total - sent)
            span = n / rate if rate > 0 else 0.001
            table = generator.generate(n, start_sim + sent / max(rate, 1), start_sim + sent / max(rate, 1) + span)
            payload = encode_ndjson(table)
            if http is not None:
                _post_with_retry(http, output, payload)
            else:
                sink.write(payload)
            sent += n
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - start_wall)
                if ahead > 0:
                    time.sleep(ahead)
    finally:
        if sink is not None and sink is not sys.stdout.buffer:
            sink.close()
        elif sink is not None:
            sink.flush()
    console.print(f"simulated {sent:,} request events in {time.monotonic() - start_wall:.1f}s", highlight=False)


def _post_with_retry(client: httpx.Client, url: str, payload: bytes, attempts: int = 20) -> None:
    for _ in range(attempts):
        response = client.post(url, content=payload, headers={"content-type": "application/x-ndjson"})
        if response.status_code in (429, 503):
            time.sleep(float(response.headers.get("retry-after", "1")))
            continue
        if response.status_code in (401, 403):
            console.print(f"[red]{url} refused the token ({response.status_code}):[/red] set LOGPIPE_INGEST_TOKEN, "
                          "or run this where the pipeline's data dir is")
            raise typer.Exit(1)
        response.raise_for_status()
        return
    raise typer.Exit(f"gave up after {attempts} attempts: {url} keeps answering {response.status_code}")


def _api_base(settings: Settings) -> str:
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host
    return f"http://{host}:{settings.http_port}"


def _login_line(settings: Settings, plain: dict[str, str]) -> str:
    if not settings.auth_enabled:
        return "dashboard " + _api_base(settings) + "/  (authentication off: loopback only)"
    read = plain.get(Role.READ) or plain.get(Role.ADMIN)
    where = f"tokens in {settings.auth().credentials_file} (mode 0600)" if settings.auth().credentials_file.exists() \
        else "tokens from the environment and the tokens file"
    if read is None:
        return f"dashboard {_api_base(settings)}/?token=<a read token>  ({where})"
    return f"dashboard {_api_base(settings)}/?token={read}  ({where})"


@app.command()
def url() -> None:
    """Print the dashboard's login address of the local pipeline (holds its read token)."""
    settings = _settings()
    token = client_token(Role.READ, settings.data_dir)
    if token is None:
        console.print(f"[red]no read token:[/red] set LOGPIPE_READ_TOKEN, or start `logpipe up` with this "
                      f"data dir ({settings.data_dir}) once")
        raise typer.Exit(1)
    sys.stdout.write(f"{_api_base(settings)}/?token={token}\n")


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="A read-only SQL query.")],
    url: Annotated[str | None, typer.Option(help="Gateway base URL; default from settings.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, json or tsv.")] = "table",
    direct: Annotated[bool, typer.Option(help="Open the store directly (nothing else may own it).")] = False,
) -> None:
    """Query the store: through the running process's API, or directly when nothing runs."""
    settings = _settings()
    try:
        if direct:
            raise httpx.ConnectError("direct")
        response = httpx.post(f"{url or _api_base(settings)}/v1/query", content=sql.encode(), timeout=120,
                              headers=_auth_headers(settings, Role.READ))
        if response.status_code != 200:
            console.print(f"[red]query failed:[/red] {response.json().get('detail')}")
            raise typer.Exit(1)
        result = response.json()
        columns, rows = result["columns"], result["rows"]
    except httpx.ConnectError:
        if url or (settings.clickhouse_url == "" and not settings.warehouse().embedded_path.exists()):
            console.print(f"[red]no logpipe process answers at {url or _api_base(settings)}[/red]")
            raise typer.Exit(1) from None
        from logpipe.warehouse.errors import StoreError
        from logpipe.warehouse.sandbox import QueryRefused
        from logpipe.warehouse.store import Store

        store = Store(settings.warehouse())
        try:
            columns, rows = store.query_user(sql)
        except (StoreError, QueryRefused) as exc:
            console.print(f"[red]query failed:[/red] {exc}")
            raise typer.Exit(1) from None
        finally:
            store.close()
    _print_rows(columns, rows, output_format)


@app.command()
def alerts(
    url: Annotated[str | None, typer.Option(help="Gateway base URL; default from settings.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, json or tsv.")] = "table",
) -> None:
    """List the alerts firing now (from analytics.alerts)."""
    from logpipe.warehouse import queries

    settings = _settings()
    query(queries.in_database(queries.ACTIVE_ALERTS, settings.clickhouse_database), url=url,
          output_format=output_format, direct=False)


@app.command()
def watch(
    url: Annotated[str | None, typer.Option(help="Gateway base URL to watch; default from settings.")] = None,
    rules: Annotated[Path | None, typer.Option(help="Rules YAML (LOGPIPE_WATCH_RULES).")] = None,
    health_url: Annotated[list[str] | None, typer.Option(help="More processes whose /healthz to watch "
                                                             "(logpipe process, logpipe spark); repeatable.")] = None,
) -> None:
    """Run the watchdog on its own, against a running pipeline's API, until SIGINT/SIGTERM."""
    from logpipe.monitor.checks import http_observer
    from logpipe.monitor.engine import build_watchdog

    _logging()
    settings = _settings(watch_rules=rules)
    base = url or _api_base(settings)
    # the admin role also lets it record its alerts in analytics.alerts through the gateway; read is enough to watch
    token = client_token(Role.ADMIN, settings.data_dir) or client_token(Role.READ, settings.data_dir) or ""
    observer = http_observer(base, settings.clickhouse_database, tuple(health_url or ()), token)
    watchdog = build_watchdog(settings.monitor(), observer)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    console.print(f"logpipe watch: {base}, {len(watchdog.rules.rules)} rules every {watchdog.rules.interval_s}s",
                  highlight=False)
    watchdog.start()
    containers = None
    socket_path = settings.docker_url.removeprefix("unix://")
    if settings.docker_url and (not settings.docker_url.startswith("unix://") or Path(socket_path).exists()):
        from logpipe.monitor.containers import ContainerWatcher

        containers = ContainerWatcher(watchdog.report_event, settings.docker_url)
        containers.start()
        console.print(f"following container events and logs at {settings.docker_url}", highlight=False)
    stopping.wait()
    if containers is not None:
        containers.stop()
    watchdog.stop()
    console.print("logpipe watch stopped", highlight=False)


def _print_rows(columns: list[str], rows: list, output_format: str) -> None:
    if output_format == "json":
        sys.stdout.write(orjson.dumps({"columns": columns, "rows": rows}, default=str).decode() + "\n")
    elif output_format == "tsv":
        for row in rows:
            sys.stdout.write("\t".join(str(v) for v in row) + "\n")
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*(str(v) for v in row))
        Console().print(table)


@schema_app.command("apply")
def schema_apply() -> None:
    """Create the ClickHouse database, tables and rollups if missing (idempotent)."""
    from logpipe.warehouse.store import Store

    settings = _settings()
    try:
        httpx.get(f"{_api_base(settings)}/ping", timeout=2)
        if settings.clickhouse_url == "":
            console.print("a running logpipe owns the embedded store and applied the schema at start")
            return
    except httpx.HTTPError:
        pass
    store = Store(settings.warehouse())
    try:
        store.wait_ready()
        for name in store.apply_schema():
            console.print(f"applied {name}", highlight=False)
    finally:
        store.close()


@schema_app.command("export")
def schema_export(
    out: Annotated[Path | None, typer.Option(help="File to write; default stdout.")] = None,
    cluster: Annotated[str | None, typer.Option(help="Cluster name: the replicated + distributed variant.")] = None,
    database: Annotated[str, typer.Option(help="Database name.")] = "analytics",
    retention_days: Annotated[int, typer.Option(help="TTL in days.")] = 30,
    dictionary_user: Annotated[str, typer.Option(help=(
        "ClickHouse user the dictionaries read as (LOGPIPE_CLICKHOUSE_DICTIONARY_USER); empty: the default "
        "user."))] = "",
) -> None:
    """Print the schema as one SQL file (the compose deployment's ClickHouse init SQL is this output, with
    `--dictionary-user logpipe_dictionaries`)."""
    from logpipe.warehouse.cluster import cluster_statements, render
    from logpipe.warehouse.store import schema_statements

    header = ("-- Generated by `logpipe schema export"
              + (f" --cluster {cluster}" if cluster else "")
              + (f" --dictionary-user {dictionary_user}" if dictionary_user else "")
              + "` from src/logpipe/warehouse/sql; do not edit.\n")
    statements = (cluster_statements(database, retention_days, cluster, dictionary_user) if cluster
                  else schema_statements(database, retention_days, dictionary_user))
    text = render(statements, header)
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        console.print(f"wrote {out}", highlight=False)


kafka_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")


@app.command()
def process(
    kafka: Annotated[str | None, typer.Option(help="Bootstrap servers (LOGPIPE_KAFKA_BOOTSTRAP).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (LOGPIPE_DATA_DIR).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processor processes; the group splits the partitions.")] = 1,
    port: Annotated[int | None, typer.Option(help="Port of /metrics and /healthz (LOGPIPE_PROCESS_PORT); "
                                                  "with --workers N, worker i serves port+1+i.")] = None,
) -> None:
    """Consume logs.* from Kafka into ClickHouse until SIGINT/SIGTERM (commits after each insert)."""
    from logpipe.apps.process import Supervisor, run_worker

    _logging()
    settings = _settings(kafka_bootstrap=kafka, data_dir=data_dir, process_port=port)
    if not settings.kafka_bootstrap:
        raise typer.BadParameter("set --kafka or LOGPIPE_KAFKA_BOOTSTRAP", param_hint="--kafka")
    store = settings.clickhouse_url or "embedded store"
    console.print(f"logpipe process: {settings.kafka_bootstrap} -> {store}, {workers} worker(s), "
                  f"metrics http://{settings.http_host}:{settings.process_port}/metrics", highlight=False)
    if workers == 1:
        code = run_worker(settings, settings.process_port)
    else:
        code = Supervisor(settings, workers, settings.process_port).run()
    console.print("logpipe process stopped cleanly", highlight=False)
    raise typer.Exit(code)


@app.command()
def spark(
    kafka: Annotated[str | None, typer.Option(help="Bootstrap servers (LOGPIPE_KAFKA_BOOTSTRAP).")] = None,
    source: Annotated[str | None, typer.Option(help="auto, kafka or python (LOGPIPE_SPARK_SOURCE).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint location (LOGPIPE_SPARK_CHECKPOINT_DIR).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (LOGPIPE_DATA_DIR).")] = None,
    port: Annotated[int | None, typer.Option(help="Port of /metrics and /healthz (LOGPIPE_PROCESS_PORT).")] = None,
) -> None:
    """Stream logs.* from Kafka into ClickHouse with Spark Structured Streaming (checkpointed)."""
    try:
        from logpipe.apps.spark import run
    except ImportError as exc:
        console.print(f"[red]the Spark engine needs the spark extra:[/red] pip install 'logpipe[spark]' ({exc})")
        raise typer.Exit(2) from exc
    _logging()
    settings = _settings(kafka_bootstrap=kafka, data_dir=data_dir, spark_source=source,
                         spark_checkpoint_dir=checkpoint, process_port=port)
    if not settings.kafka_bootstrap:
        raise typer.BadParameter("set --kafka or LOGPIPE_KAFKA_BOOTSTRAP", param_hint="--kafka")
    console.print(f"logpipe spark: {settings.kafka_bootstrap} -> {settings.clickhouse_url or 'embedded store'}, "
                  f"checkpoint {settings.spark().checkpoint_dir}, metrics "
                  f"http://{settings.http_host}:{settings.process_port}/metrics", highlight=False)
    raise typer.Exit(run(settings))


@kafka_app.command("topics")
def kafka_topics(
    kafka: Annotated[str | None, typer.Option(help="Bootstrap servers (LOGPIPE_KAFKA_BOOTSTRAP).")] = None,
    create: Annotated[bool, typer.Option(help="Create missing topics first.")] = True,
) -> None:
    """List the log topics with partitions, end offsets and the processor group's lag."""
    from logpipe.transport.kafka import ensure_topics
    from logpipe.transport.kafka_overview import KafkaOverview

    settings = _settings(kafka_bootstrap=kafka)
    config = settings.kafka_config()
    if create:
        ensure_topics(config)
    table = Table("topic", "partitions", "end offsets", "lag")
    for topic in KafkaOverview(config).topics()["topics"]:
        lag = "" if topic["lag"] is None else str(topic["lag"])
        table.add_row(topic["topic"], str(len(topic["partitions"])), str(topic["end"]), lag)
    Console().print(table)


dlq_app = typer.Typer(help="Dead letters: list them, and replay them through the running pipeline.",
                      no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


def _api_call(method: str, path: str, role: Role, url: str | None, **kwargs: object) -> object:
    """A call to the running process's API with the role's token; its refusal, or no process, exits 1."""
    settings = _settings()
    base = url or _api_base(settings)
    try:
        response = httpx.request(method, f"{base}{path}", headers=_auth_headers(settings, role), timeout=600,
                                 **kwargs)
    except httpx.ConnectError:
        console.print(f"[red]no logpipe process answers at {base}[/red]")
        raise typer.Exit(1) from None
    if response.status_code != 200:
        detail = response.json().get("detail") if response.headers.get("content-type", "").startswith(
            "application/json") else response.text
        console.print(f"[red]{method} {path} answered {response.status_code}:[/red] {detail}")
        raise typer.Exit(1)
    return response.json()


@dlq_app.command("list")
def dlq_list(
    reason: Annotated[str, typer.Option(help="Only the dead letters of this reason.")] = "",
    state: Annotated[str, typer.Option(help="open, all, stored, failed or pending.")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    reasons: Annotated[bool, typer.Option("--reasons", help="List the reasons with their counts instead.")] = False,
    url: Annotated[str | None, typer.Option(help="Gateway base URL; default from settings.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, json or tsv.")] = "table",
) -> None:
    """List dead letters, newest first, with their raw records (or, with --reasons, their reasons)."""
    if reasons:
        found = _api_call("GET", "/api/dead-letters/reasons", Role.READ, url)
        _print_rows(["reason", "open", "letters"], [[r["reason"], r["open"], r["letters"]] for r in found],
                    output_format)
        return
    page = _api_call("GET", "/api/dead-letters", Role.READ, url,
                     params={"reason": reason, "state": state, "limit": limit})
    columns = ["id", "source", "reason", "copies", "state", "raw"]
    _print_rows(columns, [[letter[c] for c in columns] for letter in page["letters"]], output_format)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Ids of the dead letters to replay (dlq list).")] = None,
    reason: Annotated[str, typer.Option(help="Replay every open dead letter of this reason.")] = "",
    url: Annotated[str | None, typer.Option(help="Gateway base URL; default from settings.")] = None,
) -> None:
    """Replay open dead letters through the running pipeline, as they are: after a rule or schema
    change. A dead letter stored by a replay is never replayed again."""
    if not ids and not reason:
        console.print("[red]name the dead letters:[/red] their ids, or --reason")
        raise typer.Exit(2)
    outcome = _api_call("POST", "/api/dead-letters/replay", Role.ADMIN, url,
                        json={"ids": ids or [], "reason": "" if ids else reason})
    sys.stdout.write(orjson.dumps(outcome, option=orjson.OPT_INDENT_2).decode() + "\n")
    if outcome["failed"] or outcome["unsent"]:
        raise typer.Exit(3)


@grafana_app.command("export")
def grafana_export(
    out: Annotated[Path, typer.Option(help="Where to write the dashboard JSON.")] = GRAFANA_DASHBOARD,
    database: Annotated[str, typer.Option(help="Database the queries read.")] = "analytics",
) -> None:
    """Write the Grafana dashboard generated from the panel definitions (the built-in dashboard's)."""
    from logpipe.dashboard.grafana import dashboard_json

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(dashboard_json(database))
    console.print(f"wrote {out}", highlight=False)


@app.command()
def bench(
    scenario: Annotated[str, typer.Option(
        help="A scenario name, names separated by commas, sources, dimensions, soak, scale-out, or all.")] = "all",
    duration: Annotated[float, typer.Option(help="Seconds per scenario.")] = 60.0,
    out: Annotated[Path, typer.Option(help="Where the JSON and Markdown results go.")] = Path("bench/results"),
) -> None:
    """Measure throughput, freshness, memory and the bottleneck stage; each scenario in its own process."""
    from logpipe.bench.report import run, scenario_names
    from logpipe.bench.scenarios import SCENARIOS

    names = scenario_names(scenario)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise typer.BadParameter(f"unknown scenario {unknown[0]!r}; known: all, sources, dimensions, soak, scale-out, "
                                 f"{', '.join(SCENARIOS)}")
    if not run(names, duration, out, console):
        raise typer.Exit(1)


@token_app.command("add")
def token_add(
    name: Annotated[str, typer.Option(help="Who holds the token; recorded in each row it sends (`sender`).")],
    role: Annotated[Role, typer.Option(help="ingest, read or admin.")] = Role.INGEST,
    file: Annotated[Path | None, typer.Option(help="The tokens file (LOGPIPE_TOKENS_FILE).")] = None,
) -> None:
    """Create a token: its hash goes into the tokens file, the token itself is printed once, to stdout."""
    from logpipe.auth.tokens import TokensFileError, add_to_tokens_file

    path = file or _settings().tokens_file
    if path is None:
        raise typer.BadParameter("set --file or LOGPIPE_TOKENS_FILE", param_hint="--file")
    try:
        token = add_to_tokens_file(path, name, role)
    except TokensFileError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"added {role} token {name!r} to {path}; a running logpipe takes it within a second. "
                  "It is shown once:", highlight=False)
    sys.stdout.write(token + "\n")


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Option(help="The token's name.")],
    file: Annotated[Path | None, typer.Option(help="The tokens file (LOGPIPE_TOKENS_FILE).")] = None,
) -> None:
    """Remove a named token; a running logpipe refuses it within a second."""
    from logpipe.auth.tokens import revoke_from_tokens_file

    path = file or _settings().tokens_file
    if path is None:
        raise typer.BadParameter("set --file or LOGPIPE_TOKENS_FILE", param_hint="--file")
    if not revoke_from_tokens_file(path, name):
        console.print(f"[red]no token named {name!r} in {path}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {name!r}", highlight=False)


@token_app.command("header")
def token_header(
    role: Annotated[Role, typer.Option(help="ingest, read or admin.")] = Role.READ,
) -> None:
    """Print `Authorization: Bearer <token>` of the local pipeline's role, for `curl -H @<(...)`: the token
    goes from file to file, never onto a command line."""
    settings = _settings()
    token = client_token(role, settings.data_dir)
    if token is None:
        console.print(f"[red]no {role} token:[/red] set LOGPIPE_{role.upper()}_TOKEN, or start `logpipe up` with "
                      f"this data dir ({settings.data_dir}) once")
        raise typer.Exit(1)
    sys.stdout.write(f"Authorization: Bearer {token}\n")


@token_app.command("list")
def token_list(
    file: Annotated[Path | None, typer.Option(help="The tokens file (LOGPIPE_TOKENS_FILE).")] = None,
) -> None:
    """Names and roles of the tokens in the tokens file (it holds no tokens, only their hashes)."""
    from logpipe.auth.tokens import read_tokens_file

    path = file or _settings().tokens_file
    if path is None:
        raise typer.BadParameter("set --file or LOGPIPE_TOKENS_FILE", param_hint="--file")
    table = Table("name", "role")
    for name, role, _ in read_tokens_file(path):
        table.add_row(name, str(role))
    Console().print(table)


@config_app.command("docs")
def config_docs() -> None:
    """Print the configuration table (as in the README)."""
    sys.stdout.write(config_table() + "\n")


if __name__ == "__main__":
    app()
