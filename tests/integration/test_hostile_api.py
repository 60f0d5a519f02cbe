"""An API that echoes the API key in every field it answers: the key reaches no one, and no error text is unbounded.

The key comes back in the error code, the message, the ``x-request-id`` header, a failed generation's reason,
unknown fields and status words, and in a 1 MB field of a ``completed`` answer without a URL. Through a real
``dag.test()`` of the generate operator (worker and deferrable: the trigger runs inline), what an
``on_failure_callback`` receives, the trigger's event, the XComs and the logs never hold it, in any form.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from airflow_provider_infinityblue.redaction import MESSAGE_LIMIT
from airflow_provider_infinityblue.triggers.infinityblue import InfinityBlueBatchTrigger, InfinityBlueVideoTrigger
from airflow_provider_infinityblue.version_compat import AIRFLOW_V_3_1_PLUS
from tests.integration.dags.infinityblue_hostile_api import FAILURE_RECORD_ENV
from tests.loopback import Reply

# Obviously fake; its '/', '+' and '=' make its percent-encoded form differ from it.
KEY = "sk-fake-LEAKCANARY/0123+4567=89abcdef"
CANARY = "LEAKCANARY"  # in the key and in every form of it
ECHO = {"x-request-id": f"req-{KEY}"}
ONE_MB = 1024 * 1024

SUBMITTED = Reply(body={"task_id": "t1", "status": "queued", "echo": f"Bearer {KEY}"}, headers=ECHO)
RUNNING = Reply(
    body={"task_id": "t1", "status": f"warming up for {KEY}", f"seen-{KEY}": quote(KEY, safe="")}, headers=ECHO
)
FAILED = Reply(
    body={
        "task_id": "t1",
        "status": "failed",
        "error": {"code": f"code-{KEY}", "message": f"Refused the request of Bearer {KEY}"},
        "fail_reason": KEY,
    },
    headers=ECHO,
)
COMPLETED_WITHOUT_URL = Reply(
    body={"task_id": "t1", "status": "completed", "padding": (f"Authorization: Bearer {KEY} " * ONE_MB)[:ONE_MB]},
    headers=ECHO,
)
DENIED = Reply(
    403, {"error": {"code": f"denied-{KEY}", "message": f"Key {quote(KEY, safe='')} may not " + "x" * 5000}}, ECHO
)
REFUSED_KEY = Reply(401, {"error": {"code": KEY, "message": f"Incorrect API key provided: Bearer {KEY}"}}, ECHO)


@dataclass(frozen=True)
class Hostile:
    answers: list[Reply]  # after the POST's
    says: str  # a fragment of the error a user sees


SCENARIOS = {
    "failed with the key as reason": Hostile([RUNNING, FAILED], "Refused the request of Bearer ***"),
    "completed without a URL, 1 MB field": Hostile([RUNNING, COMPLETED_WITHOUT_URL], "fields 'task_id', 'status'"),
    "403 echoing the key": Hostile([RUNNING, DENIED], "HTTP 403"),
}


@pytest.fixture
def hostile_api(loopback_api):
    """Start the echoing API, with ``infinityblue_default`` holding the key it echoes."""
    return lambda answers: loopback_api(answers, password=KEY, extra={"initial_backoff": 0.01})


def assert_bounded_and_clean(texts: list[str], logs: str = "") -> None:
    """No form of the key in ``texts`` or ``logs``; each text within the error limit, each log line too."""
    for text in texts:
        assert CANARY not in text
        assert len(text) <= MESSAGE_LIMIT + 1
    assert CANARY not in logs
    assert max((len(line) for line in logs.splitlines()), default=0) < MESSAGE_LIMIT + 500


def run_and_record(run_dag, tmp_path, monkeypatch, dag_id: str) -> tuple[object, list[str]]:
    """Run the DAG; return its result and the texts of the errors its ``on_failure_callback`` received.

    Airflow 3.0 gives failure callbacks no exception: there the list is empty, and the logs, XComs and
    events carry the proof.
    """
    record = tmp_path / "failures.jsonl"
    monkeypatch.setenv(FAILURE_RECORD_ENV, str(record))
    result = run_dag(dag_id)
    failures = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    assert len(failures) == (1 if AIRFLOW_V_3_1_PLUS else 0)
    return result, failures


@pytest.mark.parametrize("mode", ["worker", "deferrable"])
@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_the_key_reaches_no_callback_xcom_or_log(
    hostile_api, run_dag, tmp_path, monkeypatch, scenario: Hostile, mode: str
) -> None:
    server = hostile_api([SUBMITTED, *scenario.answers])
    result, failures = run_and_record(run_dag, tmp_path, monkeypatch, f"hostile_api_{mode}")
    assert result.state == "failed"
    for text in failures:
        assert scenario.says in text, text
        assert "t1" in text
    assert_bounded_and_clean([*failures, repr(result.xcom)], result.logs)
    assert server.received[0].headers["Authorization"] == f"Bearer {KEY}"  # the key really was sent, and echoed


def test_a_refused_key_echoed_back_reaches_no_callback(hostile_api, run_dag, tmp_path, monkeypatch) -> None:
    server = hostile_api([REFUSED_KEY])
    result, failures = run_and_record(run_dag, tmp_path, monkeypatch, "hostile_api_worker")
    assert result.state == "failed"
    for text in failures:
        assert "rejected the API key" in text, text
        assert "request id req-***" in text, text
    assert_bounded_and_clean(failures, result.logs)
    assert [r.method for r in server.received] == ["POST"]


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_the_key_is_not_in_the_trigger_event(hostile_api, scenario: Hostile) -> None:
    hostile_api(scenario.answers)

    async def events() -> list[dict]:
        trigger = InfinityBlueVideoTrigger("t1", poll_interval=1, timeout=30)
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(events())
    assert event["status"] in ("failed", "error")
    assert scenario.says in event["message"], event
    assert_bounded_and_clean([json.dumps(event)])


def test_the_key_is_not_in_the_batch_triggers_event(hostile_api) -> None:
    """Three rows in flight, each ending in one of the hostile answers: the event (the manifest's source) is clean."""
    hostile_api([FAILED, COMPLETED_WITHOUT_URL, DENIED])
    now = time.time()
    in_flight = [{"row": row, "generation_id": f"t{row}", "submitted_at": now - 1} for row in range(3)]

    async def events() -> list[dict]:
        trigger = InfinityBlueBatchTrigger(in_flight, poll_interval=1, timeout=30)
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(events())
    assert sorted(finished["status"] for finished in event["finished"]) == ["error", "error", "failed"]
    assert_bounded_and_clean([json.dumps(finished) for finished in event["finished"]])
