"""The Kafka page in headless Chromium, against `logpipe up` on a real broker (tansu): the topics with
their offsets and lag, the partitions, and a dead letter the processor sent to the dead-letter topic."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import httpx
import orjson

from logpipe.transport.topics import topic_names
from tests.conftest import LOGPIPE
from tests.dashboard.conftest import screenshots
from tests.kafka_support import kafka_test_config, wait_for


def test_the_kafka_page_shows_topics_partitions_lag_and_the_newest_dead_letter(page, logpipe_factory, kafka_broker):
    config, env = kafka_test_config(kafka_broker)
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", **env)
    run = uuid.uuid4().hex[:8]
    body = b"\n".join(orjson.dumps({"ts": time.time(), "service": "auth", **e}) for e in (
        {"event_id": f"{run}-good", "status": 200}, {"event_id": f"{run}-bad", "status": "teapot"}))
    answer = httpx.post(f"{lp.base}/v1/logs", content=body, headers=lp.headers("ingest"), timeout=30).json()
    assert (answer["accepted"], answer["rejected"]) == (1, 1)

    def dead_letters() -> list[dict]:
        response = httpx.get(f"{lp.base}/api/kafka/dead-letters", headers=lp.headers("read"), timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    assert wait_for(lambda: any(f"{run}-bad" in m["value"] for m in dead_letters()), 60)
    assert httpx.get(f"{lp.base}/api/kafka/topics", timeout=30).status_code == 401
    listed = subprocess.run([*LOGPIPE, "kafka", "topics", "--no-create"], env={**os.environ, **env, "COLUMNS": "200"},
                            capture_output=True, text=True, timeout=60)
    lines = {line.split()[1]: line.split()[2:] for line in listed.stdout.splitlines()
             if line.startswith("│") and config.topic_prefix in line}
    assert lines[config.topic_prefix + "dlq"] == ["│", "3", "│", "1", "│", "│"]  # one dead letter, no lag

    page.goto(lp.base + "/?token=" + lp.tokens["read"])
    page.problems.clear()
    page.goto(lp.base + "/kafka")
    page.wait_for_function("Number(document.body.dataset.refreshed) > 0", timeout=30_000)
    rows = [r.locator("td").all_inner_texts() for r in page.locator("#topics tr.topic").all()]
    topics = {row[0]: row for row in rows}
    assert sorted(topics) == sorted(topic_names(config.topic_prefix))
    assert topics[config.topic_prefix + "auth"][3] != "0"  # the good event's end offset
    assert topics[config.topic_prefix + "dlq"][4] == "–"  # no group consumes the dead letters
    assert page.locator("#partitions tbody tr").count() == sum(int(row[1]) for row in topics.values())
    message = page.locator("#dlq tr.dlq-message", has_text=f"{run}-bad")
    message.wait_for(timeout=10_000)
    assert "status: not a number" in message.inner_text()
    assert config.group_id in page.inner_text("#summary")
    assert page.problems == []
    screenshots(page, "kafka", lambda p: p.wait_for_function("Number(document.body.dataset.refreshed) > 0",
                                                            timeout=30_000))
