"""gateway/simulator -> Kafka (tansu) -> `logpipe process` -> ClickHouse, with crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from concurrent.futures import Future

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from logpipe.transport.kafka import DeliveryFailed, KafkaProducerTransport, _Delivery, ensure_topics, topics_for
from logpipe.transport.topics import dlq_topic, topic_names
from tests.conftest import LOGPIPE
from tests.kafka_support import (
    caught_up,
    committed_total,
    kafka_test_config,
    lagging,
    produce_traffic,
    start_processor,
    wait_for,
)


def test_topics_are_whole_names_whatever_services_share_a_batch():
    table = pa.table({"service": ["auth", "auth", "nobody", "auth"],
                      "kind": ["access", "app_error", "access", "system"]})
    assert topics_for(table, "logs.").tolist() == ["logs.auth", "logs.error", "logs.other", "logs.system"]


def _query(data_dir, sql: str) -> list:
    out = subprocess.run([*LOGPIPE, "query", sql, "--direct", "--format", "json"], check=True, text=True,
                         capture_output=True, env={**os.environ, "LOGPIPE_DATA_DIR": str(data_dir)}).stdout
    return orjson.loads(out)["rows"]


def test_every_event_arrives_exactly_once_despite_kill_9(own_kafka_broker, tmp_path):
    config, env = kafka_test_config(own_kafka_broker)
    assert set(ensure_topics(config)) == set(topic_names(config.topic_prefix))
    produced = produce_traffic(config, 200_000, seed=1)
    # a poison message in the middle of a partition
    poison = KafkaProducerTransport(config)
    poison.send_raw([b'{"service": "auth", "ts": "not a time"}', b"\xff\xfe garbage"],
                    [config.topic_prefix + "auth"] * 2, ["auth", "auth"]).result(30)
    after = produce_traffic(config, 1_000, seed=2)
    poison.close()
    expected = produced.num_rows + after.num_rows

    for _ in range(2):  # crash twice mid-stream: as soon as the processor has committed some more
        committed_before = committed_total(config)
        process = start_processor(env, tmp_path)
        assert wait_for(lambda: committed_total(config) > committed_before, 60)  # noqa: B023 - awaited here
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        # Let the dead member's session (6 s) expire before the next one joins: tansu's coordinator
        # sometimes never hands a dead member's partitions on when a new member joined meanwhile.
        time.sleep(8)
    log_before = len((tmp_path / "process.log").read_text())
    process = start_processor(env, tmp_path)
    assert wait_for(lambda: caught_up(config), 180), (lagging(config), (tmp_path / "process.log").read_text()[-3000:])
    # it has joined the group (so its signal handlers are in place) before it is asked to stop
    assert wait_for(lambda: "assigned [" in (tmp_path / "process.log").read_text()[log_before:], 60)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0

    (count, unique), = _query(tmp_path, "SELECT count(), uniqExact(event_id) FROM analytics.fact_log")
    assert (count, unique) == (expected, expected)
    by_topic = dict(map(tuple, _query(tmp_path, "SELECT topic, count() FROM analytics.fact_log GROUP BY topic")))
    services = produced.filter(pc.equal(produced["kind"], "request"))["service"].to_pylist() + \
        after.filter(pc.equal(after["kind"], "request"))["service"].to_pylist()
    assert by_topic[config.topic_prefix + "auth"] == services.count("auth")
    assert by_topic[config.topic_prefix + "error"] == expected - len(services)
    dead = _query(tmp_path, "SELECT topic, reason FROM analytics.dead_letter ORDER BY offset")
    assert len({tuple(d) for d in dead}) == 2
    assert {d[1].split(" (")[0].split(":")[0] for d in dead} == {"ts", "invalid JSON"}

    consumer = Consumer({"bootstrap.servers": own_kafka_broker, "group.id": f"dlq-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([dlq_topic(config.topic_prefix)])
    messages = []
    deadline = time.monotonic() + 30
    while len(messages) < 2 and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(10, 1.0) if m.error() is None]
    consumer.close()
    headers = [dict(m.headers()) for m in messages]
    assert {h["origin_topic"] for h in headers} == {(config.topic_prefix + "auth").encode()}
    assert all("error" in h and h["origin_offset"].isdigit() for h in headers)


def test_gateway_to_kafka_to_processor_in_one_process(kafka_broker, logpipe_factory, tmp_path):
    from logpipe.auth.tokens import Role, add_to_tokens_file

    config, env = kafka_test_config(kafka_broker)
    tokens_file = tmp_path / "tokens.yaml"
    shipper = add_to_tokens_file(tokens_file, "edge-shipper", Role.INGEST)
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_TOKENS_FILE=str(tokens_file), **env)
    now = time.time()
    events = [{"event_id": f"gk-{i}", "ts": now, "service": ["auth", "order", "payment", "notify"][i % 4],
               "status": 200} for i in range(400)]
    events[7] = {"event_id": "gk-bad", "service": "auth"}  # no ts
    response = httpx_post(lp, b"\n".join(orjson.dumps(e) for e in events))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 399 and response.json()["errors"][0]["index"] == 7

    def arrived():
        return lp.query("SELECT count() FROM analytics.fact_log WHERE event_id LIKE 'gk-%'")[0][0] == 399

    assert wait_for(arrived, 60)
    rows = lp.query("SELECT topic, count(), uniqExact(event_id) FROM analytics.fact_log "
                    "WHERE event_id LIKE 'gk-%' GROUP BY topic ORDER BY topic")
    assert rows == [[config.topic_prefix + s, c, c] for s, c in
                    sorted({"auth": 100, "notify": 99, "order": 100, "payment": 100}.items())]
    assert wait_for(lambda: lp.query("SELECT count() FROM analytics.dead_letter WHERE raw LIKE '%gk-bad%'")[0][0] == 1,
                    30)

    # a named token's name crosses Kafka with each record (a header) and lands in the rows' sender
    named = b"\n".join(orjson.dumps({"event_id": f"gk-named-{i}", "ts": now, "service": "auth"}) for i in range(5))
    import httpx

    assert httpx.post(f"{lp.base}/v1/logs", content=named, headers={"Authorization": f"Bearer {shipper}"},
                      timeout=60).json()["accepted"] == 5
    assert wait_for(lambda: lp.query("SELECT sender, count() FROM analytics.fact_log WHERE event_id LIKE 'gk-%' "
                                     "GROUP BY sender ORDER BY sender") == [["", 399], ["edge-shipper", 5]], 60)

    # a topic created while the processor runs is picked up by the pattern subscription
    new_topic = config.topic_prefix + "billing"
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    admin.create_topics([NewTopic(new_topic, 1, 1)])[new_topic].result(10)
    producer = KafkaProducerTransport(config)
    producer.send_raw([orjson.dumps({"event_id": "gk-new", "ts": time.time(), "service": "billing"})],
                      [new_topic], ["billing"]).result(30)
    producer.close()
    assert wait_for(lambda: lp.query("SELECT topic FROM analytics.fact_log WHERE event_id = 'gk-new'") == [[new_topic]],
                 60)

    # the offsets are committed (and the lag gauge set) just after the rows become visible
    lag_gauge = f'logpipe_kafka_consumer_lag{{partition="0",topic="{new_topic}"}}'
    assert wait_for(lambda: lag_gauge in httpx_get(f"{lp.base}/metrics", lp.headers()), 30)
    exposed = httpx_get(f"{lp.base}/metrics", lp.headers())
    assert "logpipe_kafka_commit_seconds_count" in exposed
    assert "logpipe_kafka_record_age_seconds_count" in exposed

    listing = subprocess.run([*LOGPIPE, "kafka", "topics"], env={**os.environ, **env}, check=True,
                             capture_output=True, text=True).stdout
    auth_row = next(line for line in listing.splitlines() if config.topic_prefix + "auth" in line)
    assert auth_row.split("│")[2].strip() == "3"  # partitions
    assert int(auth_row.split("│")[3].strip()) >= 1  # end offsets (tansu reports batch-granular watermarks)
    assert auth_row.split("│")[4].strip() == "0"  # lag: all consumed and committed
    assert lp.stop() == 0


def httpx_get(url: str, headers: dict[str, str]) -> str:
    import httpx

    return httpx.get(url, timeout=30, headers=headers).text


def httpx_post(lp, body: bytes):
    import httpx

    return httpx.post(f"{lp.base}/v1/logs", content=body, timeout=60, headers=lp.headers("ingest"))


def test_frozen_broker_gets_503_or_2xx_never_a_hang_and_acked_events_land_once(kafka_broker, logpipe_factory):
    import threading

    import httpx

    from tests.conftest import BROKER_PROCESSES

    _, env = kafka_test_config(kafka_broker)
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_ACK_TIMEOUT_S="25", **env)
    broker = BROKER_PROCESSES[kafka_broker]
    outcomes: dict[int, tuple[int, float]] = {}

    def post(request_id: int) -> None:
        body = b"\n".join(orjson.dumps({"event_id": f"fz-{request_id}-{i}", "ts": time.time(), "service": "order",
                                        "status": 200}) for i in range(50))
        started = time.monotonic()
        status = httpx.post(f"{lp.base}/v1/logs", content=body, timeout=120, headers=lp.headers("ingest")).status_code
        outcomes[request_id] = (status, time.monotonic() - started)

    broker.send_signal(signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=post, args=(r,)) for r in range(6)]
        for thread in threads:
            thread.start()
            time.sleep(0.2)
        for thread in threads:
            thread.join(90)
    finally:
        broker.send_signal(signal.SIGCONT)
    assert len(outcomes) == 6, "a request hung"
    assert all(status in (200, 503) for status, _ in outcomes.values()), outcomes
    assert all(seconds < 40 for _, seconds in outcomes.values()), outcomes
    assert any(status == 503 for status, _ in outcomes.values()), outcomes  # the freeze was felt
    acked = sorted(r for r, (status, _) in outcomes.items() if status == 200)
    def thawed() -> bool:  # after the thaw the pipeline takes events again; clients retry on 503
        post(100)
        return outcomes[100][0] == 200

    assert wait_for(thawed, 90)
    acked.append(100)

    def stored() -> dict:
        rows = lp.query("SELECT splitByChar('-', event_id)[2] AS r, count(), uniqExact(event_id) "
                        "FROM analytics.fact_log WHERE event_id LIKE 'fz-%' GROUP BY r")
        return {int(r): (c, u) for r, c, u in rows}

    assert wait_for(lambda: all(stored().get(r) == (50, 50) for r in acked), 90), (acked, stored())
    assert all(count == unique for count, unique in stored().values())
    assert lp.stop() == 0


def test_a_source_keeps_its_name_topic_and_reasons_through_kafka(kafka_broker, logpipe_factory):
    """Syslog over TCP to `logpipe up` in Kafka mode: rows land on logs.system with source syslog, and a
    message syslog could not read is a dead letter with syslog's reason, not a row."""
    import socket

    config, env = kafka_test_config(kafka_broker)
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", **env)
    app = f"kfk{uuid.uuid4().hex[:6]}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = [f"<11>1 {stamp} web-7 {app} 42 ID1 - disk {i} failing".encode() for i in range(3)]
    lines.insert(1, f"not syslog at all {app}".encode())
    with socket.create_connection(("127.0.0.1", lp.syslog_port), timeout=10) as connection:
        connection.sendall(b"\n".join(lines) + b"\n")

    def facts():
        return lp.query(f"SELECT source, kind, level, host, topic, count() FROM analytics.fact_log "
                        f"WHERE service = '{app}' GROUP BY source, kind, level, host, topic")

    assert wait_for(lambda: facts() == [["syslog", "system", "ERROR", "web-7", config.topic_prefix + "system", 3]],
                    60), facts()
    assert lp.query(f"SELECT DISTINCT attributes['procid'], attributes['msgid'] FROM analytics.fact_log "
                    f"WHERE service = '{app}'") == [["42", "ID1"]]
    refused = f"SELECT source, reason FROM analytics.dead_letter WHERE raw = 'not syslog at all {app}'"
    assert wait_for(lambda: lp.query(refused) == [["syslog", "syslog: not a syslog message (no <PRI> at its start)"]],
                    30)
    assert lp.stop() == 0


def test_concurrent_requests_validated_together_are_each_answered_and_sent_as_their_own(tmp_path, logpipe_factory,
                                                                                        kafka_broker):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from logpipe.auth.tokens import Role, add_to_tokens_file
    from tests.kafka_support import headers as role_headers

    _, env = kafka_test_config(kafka_broker)
    tokens_file = tmp_path / "tokens.toml"
    senders = {name: add_to_tokens_file(tokens_file, name, Role.INGEST) for name in ("checkout", "billing")}
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_TOKENS_FILE=str(tokens_file), **env)
    run = uuid.uuid4().hex[:6]

    def post(n: int) -> tuple[int, dict]:
        sender = ("checkout", "billing")[n % 2]
        lines = [orjson.dumps({"event_id": f"{run}-{n}-{i}", "ts": time.time(), "service": "auth",
                               "status": "bad" if i == n % 7 else 200}) for i in range(40)]
        response = httpx.post(f"{lp.base}/v1/logs", content=b"\n".join(lines), timeout=60,
                              headers={"Authorization": f"Bearer {senders[sender]}"})
        return n, response.json()

    with ThreadPoolExecutor(24) as pool:
        answers = dict(pool.map(post, range(48)))
    for n, answer in answers.items():  # each request hears of its own records, by its own positions
        assert (answer["accepted"], answer["rejected"]) == (39, 1), (n, answer)
        assert [e["index"] for e in answer["errors"]] == [n % 7]
    expected = sorted((f"{run}-{n}-{i}", ("checkout", "billing")[n % 2]) for n in range(48) for i in range(40)
                      if i != n % 7)

    def stored() -> list:
        response = httpx.post(f"{lp.base}/v1/query", headers=role_headers(env), timeout=30, content=(
            f"SELECT event_id, sender FROM analytics.fact_log WHERE startsWith(event_id, '{run}-') "
            "ORDER BY event_id").encode())
        return [tuple(r) for r in response.json()["rows"]]

    assert wait_for(lambda: len(stored()) >= len(expected), 90)
    assert stored() == expected  # every good record once, with its request's sender


def _read_all(config, expected: int) -> list[bytes]:
    """Every message of the log topics, read from the start by a consumer of no group offsets."""
    consumer = Consumer({"bootstrap.servers": config.bootstrap, "group.id": f"read-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=5)
        consumer.assign([TopicPartition(topic, p, 0) for topic in topic_names(config.topic_prefix)
                         if topic in metadata.topics for p in metadata.topics[topic].partitions])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(values) < expected and time.monotonic() < deadline:
            values += [m.value() for m in consumer.consume(5000, 0.5) if m.error() is None]
        values += [m.value() for m in consumer.consume(5000, 1.0) if m.error() is None]  # nothing more
        return values
    finally:
        consumer.close()


def test_a_send_resolves_once_the_broker_holds_every_message_and_fails_on_a_first_error(kafka_broker):
    config, _ = kafka_test_config(kafka_broker)
    ensure_topics(config)
    producer = KafkaProducerTransport(config)
    try:
        topics = [config.topic_prefix + service for service in ("auth", "payment", "order")] * 400
        sent = producer.send_raw([b'{"n":%d}' % i for i in range(1200)], topics, [str(i % 7) for i in range(1200)])
        assert sent.result(30) == 1200
        # resolved means held by the broker, every one, once
        assert sorted(_read_all(config, 1200)) == sorted(b'{"n":%d}' % i for i in range(1200))

        # one report of a failure fails the send, whatever the reports after it say
        failing = Future()
        delivery = _Delivery(producer, failing, 3, producer.generation)
        delivery.delivered(None, None)
        delivery.delivered(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), None)
        delivery.delivered(None, None)
        with pytest.raises(DeliveryFailed):
            failing.result(0)
        # and a send is not resolved before its last report
        pending = Future()
        delivery = _Delivery(producer, pending, 2, producer.generation)
        delivery.delivered(None, None)
        assert not pending.done()
        delivery.delivered(None, None)
        assert pending.result(0) == 2
    finally:
        producer.close()
