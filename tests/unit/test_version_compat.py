"""Airflow versions without the task state store (< 3.3): the operator still works, and says so once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PRETEND_OLD_AIRFLOW = """
import json
import airflow.sdk
vars(airflow.sdk)["__lazy_imports"].pop("ResumableJobMixin")
vars(airflow.sdk).pop("ResumableJobMixin", None)

from airflow_provider_infinityblue.version_compat import ResumableJobMixin
import airflow_provider_infinityblue.operators.infinityblue as operators

calls, warnings = [], []

class Recorder:
    def warning(self, message, *args):
        warnings.append(message % args if args else message)

class Job(ResumableJobMixin):
    log = Recorder()
    def submit_job(self, context):
        calls.append("submit")
        return "t1"
    def poll_until_complete(self, external_id, context):
        calls.append(f"poll {external_id}")
    def get_job_result(self, external_id, context):
        calls.append(f"result {external_id}")
        return "https://cdn/t1.mp4"

result = Job().execute_resumable({})
print(json.dumps({
    "shim": ResumableJobMixin.__module__,
    "operator_uses_it": ResumableJobMixin in operators.InfinityBlueGenerateVideoOperator.__mro__,
    "result": result, "calls": calls, "warnings": warnings,
}))
"""


# On an Airflow older than 3.3 the stand-in is what runs: tests/unit/operators test it there directly.
@pytest.mark.airflow(">=3.3", feature="an older Airflow pretended by removing the mixin")
def test_without_the_mixin_the_operator_submits_and_waits_and_warns_once() -> None:
    run = subprocess.run([sys.executable, "-c", PRETEND_OLD_AIRFLOW], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["shim"] == "airflow_provider_infinityblue.version_compat"
    assert outcome["operator_uses_it"] is True
    assert outcome["result"] == "https://cdn/t1.mp4"
    assert outcome["calls"] == ["submit", "poll t1", "result t1"]
    assert len(outcome["warnings"]) == 1
    assert "will submit a new job" in outcome["warnings"][0]
