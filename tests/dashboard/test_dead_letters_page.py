"""The dead-letter page in headless Chromium: a dead letter found by its reason, corrected and replayed;
and `logpipe dlq list|replay` against the same running pipeline."""

from __future__ import annotations

import subprocess
import time
import uuid

import httpx
import orjson

from tests.conftest import LOGPIPE
from tests.dashboard.conftest import screenshots


def _post(lp, *events: dict) -> dict:
    body = b"\n".join(orjson.dumps({"ts": time.time(), "service": "ledger", **e}) for e in events)
    response = httpx.post(f"{lp.base}/v1/logs", content=body, headers=lp.headers("ingest"), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _stored(lp, run: str) -> list[list]:
    return lp.query(f"SELECT event_id, status FROM analytics.fact_log WHERE startsWith(event_id, '{run}') "
                    "ORDER BY event_id")


def test_a_dead_letter_is_corrected_and_replayed_from_the_page(page, logpipe_factory):
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false")
    run = uuid.uuid4().hex[:8]
    assert _post(lp, {"event_id": f"{run}-1", "status": "two hundred"})["rejected"] == 1
    page.goto(lp.base + "/?token=" + lp.tokens["admin"])  # replay needs the admin role
    page.problems.clear()
    page.goto(lp.base + "/dead-letters")
    reason = page.locator("#reasons tr.reason", has_text="status: not a number")
    reason.wait_for(timeout=10_000)
    assert reason.locator("td").nth(1).inner_text() == "1"  # open
    reason.click()
    letter = page.locator("#letters tr.letter", has_text="two hundred")
    letter.wait_for(timeout=10_000)
    assert page.locator("#letters tr.letter").count() == 1
    letter.click()
    raw = page.locator("textarea.raw")
    assert f'"event_id":"{run}-1"' in raw.input_value()
    raw.fill(raw.input_value().replace('"two hundred"', "200"))
    page.click("button.replay-one")
    page.wait_for_function("Number(document.body.dataset.replayed) > 0", timeout=30_000)
    assert "stored 1" in page.inner_text("#status")
    assert _stored(lp, run) == [[f"{run}-1", 200]]
    page.wait_for_function("document.querySelector('#reasons tr.reason td:nth-child(2)')?.textContent === '0'",
                           timeout=10_000)  # nothing of that reason is open now
    page.select_option("#state", "stored")
    page.locator("#letters tr.letter", has_text="stored").wait_for(timeout=10_000)
    assert page.problems == []
    screenshots(page, "dead-letters", lambda p: p.locator("#letters tr.letter").first.click(timeout=10_000))


def test_dlq_list_and_replay_from_the_command_line(logpipe_factory):
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_MAX_FUTURE_S="3600")
    run = uuid.uuid4().hex[:8]
    assert _post(lp, {"event_id": f"{run}-1", "status": 201, "latency_ms": "fast"})["rejected"] == 1

    def logpipe(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*LOGPIPE, "dlq", *args, "--url", lp.base], env=lp.client_env(), capture_output=True,
                              text=True, timeout=120)

    listed = orjson.loads(logpipe("list", "--format", "json").stdout)
    (row,) = listed["rows"]
    letter = dict(zip(listed["columns"], row, strict=True))
    assert letter["state"] == "open" and f"{run}-1" in letter["raw"]
    reasons = logpipe("list", "--reasons", "--format", "tsv").stdout
    assert reasons.splitlines() == ["latency_ms: not a number\t1\t1"]
    failed = logpipe("replay", letter["id"])  # unchanged, it fails again: exit 3, with the new reason
    assert failed.returncode == 3, failed.stderr
    assert orjson.loads(failed.stdout)["errors"][0]["reason"].startswith("latency_ms: not a number")
    again = logpipe("replay", letter["id"])
    assert again.returncode == 0 and orjson.loads(again.stdout)["not_open"] == [letter["id"]]  # never twice
    assert logpipe("replay").returncode == 2
    without_kafka = httpx.get(f"{lp.base}/api/kafka/topics", headers=lp.headers("read"), timeout=30)
    assert without_kafka.status_code == 404 and "LOGPIPE_KAFKA_BOOTSTRAP" in without_kafka.text
    assert _stored(lp, run) == []
    anonymous = subprocess.run([*LOGPIPE, "dlq", "list", "--url", lp.base], capture_output=True, text=True,
                               env={k: v for k, v in lp.client_env().items() if not k.endswith("_TOKEN")}
                               | {"LOGPIPE_DATA_DIR": str(lp.data_dir / "elsewhere")}, timeout=120)
    assert anonymous.returncode == 1 and "401" in anonymous.stderr
