"""InfinityBlueGenerateVideoOperator called directly: submission, deferral, polling, durable retries."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAmbiguousSubmitError,
    InfinityBlueAuthenticationError,
    InfinityBlueError,
    InfinityBlueGenerationFailedError,
    InfinityBlueGenerationLostError,
    InfinityBlueNotFoundError,
    InfinityBlueValidationError,
    InfinityBlueWaitTimeoutError,
)
from airflow_provider_infinityblue.links.infinityblue import InfinityBlueVideoLink
from airflow_provider_infinityblue.operators.infinityblue import SUBMISSION_KEY, InfinityBlueGenerateVideoOperator
from airflow_provider_infinityblue.triggers.infinityblue import InfinityBlueVideoTrigger
from tests.conftest import BASE_URL
from tests.unit.fakes import MemoryTaskStateStore, task_context

SUBMIT_URL = f"{BASE_URL}/v1/video/generations"
STATUS_URL = f"{SUBMIT_URL}/t1"
NOT_FOUND = {"status_code": 404, "json": {"error": {"message": "no such task", "code": "not_found"}}}
QUEUED = {"json": {"task_id": "t1", "status": "queued"}}
RUNNING = {"json": {"task_id": "t1", "status": "in_progress", "progress": 40}}
DONE = {"json": {"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"}}
FAILED = {
    "json": {
        "task_id": "t1",
        "status": "failed",
        "error": {"code": "content_policy_violation", "message": "Prompt refused"},
    }
}


def operator(**kwargs) -> InfinityBlueGenerateVideoOperator:
    defaults = {"task_id": "generate", "prompt": "A lighthouse in a storm", "poll_interval": 1, "timeout": 30}
    return InfinityBlueGenerateVideoOperator(**{**defaults, **kwargs})


def posts(requests_mock) -> int:
    return sum(1 for r in requests_mock.request_history if r.method == "POST")


class TestSubmission:
    def test_defers_to_a_correctly_built_trigger(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t1", "status": "queued"})
        requests_mock.get(STATUS_URL, [QUEUED])
        context = task_context()
        op = operator(deferrable=True, poll_interval=15, timeout=timedelta(minutes=20), model="veo_3_1", duration="5")
        before = time.time()
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context)
        trigger = deferred.value.trigger
        assert isinstance(trigger, InfinityBlueVideoTrigger)
        assert (trigger.generation_id, trigger.infinityblue_conn_id, trigger.poll_interval) == (
            "t1",
            "infinityblue_default",
            15.0,
        )
        assert before + 1200 <= trigger.end_time <= time.time() + 1200
        assert deferred.value.method_name == "execute_complete"
        assert context["ti"].xcom["model"] == "veo_3_1"  # the resumed worker reads the model it was sent with here
        assert deferred.value.timeout >= timedelta(minutes=20)
        assert requests_mock.request_history[0].json() == {
            "prompt": "A lighthouse in a storm",
            "model": "veo_3_1",
            "duration": 5,
        }
        assert context["ti"].xcom == {"infinityblue_task_id": "t1", "model": "veo_3_1"}
        assert context["task_state_store"].values["infinityblue_task_id"] == "t1"
        record = context["task_state_store"].values[SUBMISSION_KEY]
        assert record["state"] == "submitted"
        assert record["generation_id"] == "t1"
        assert before <= record["submitted_at"] <= time.time()
        assert trigger.submitted_at == record["submitted_at"]

    def test_already_finished_at_the_first_check_does_not_defer(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t1", "status": "queued"})
        requests_mock.get(STATUS_URL, [DONE])
        context = task_context()
        assert operator(deferrable=True).execute(context) == "https://cdn/t1.mp4"
        assert context["ti"].xcom == {
            "infinityblue_task_id": "t1",
            "model": "kling-v2-5-turbo",
            "video_url": "https://cdn/t1.mp4",
        }

    def test_sync_mode_polls_on_the_worker(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t1", "status": "queued"})
        requests_mock.get(STATUS_URL, [QUEUED, RUNNING, DONE])
        context = task_context()
        assert operator(deferrable=False).execute(context) == "https://cdn/t1.mp4"
        assert context["ti"].xcom["video_url"] == "https://cdn/t1.mp4"
        assert requests_mock.call_count == 4

    def test_sync_mode_failure_says_why(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t1", "status": "queued"})
        requests_mock.get(STATUS_URL, [QUEUED, FAILED])
        with pytest.raises(InfinityBlueGenerationFailedError, match=r"t1.*Prompt refused"):
            operator(deferrable=False).execute(task_context())

    def test_sync_mode_timeout_says_it_may_still_finish(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t1", "status": "queued"})
        requests_mock.get(STATUS_URL, json={"task_id": "t1", "status": "in_progress"})
        with pytest.raises(InfinityBlueWaitTimeoutError, match="may still finish"):
            operator(deferrable=False, timeout=0.2).execute(task_context())

    def test_no_wait_returns_the_task_id_at_once(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t1", "status": "queued"})
        context = task_context()
        assert operator(wait_for_completion=False, deferrable=True).execute(context) == "t1"
        assert [r.method for r in requests_mock.request_history] == ["POST"]
        assert context["ti"].xcom == {"infinityblue_task_id": "t1", "model": "kling-v2-5-turbo"}

    def test_invalid_parameters_send_nothing(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "never"})
        with pytest.raises(InfinityBlueValidationError, match="'width'"):
            operator(width="wide").execute(task_context())
        assert requests_mock.call_count == 0

    def test_ambiguous_submission_is_not_repeated(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, status_code=502, text="<html>bad gateway</html>")
        context = task_context()
        with pytest.raises(InfinityBlueAmbiguousSubmitError):
            operator().execute(context)
        assert posts(requests_mock) == 1
        # The marker stays: a retry must not POST again on its own (see TestUnconfirmedSubmissions).
        assert context["task_state_store"].values[SUBMISSION_KEY]["state"] == "submitting"
        assert "infinityblue_task_id" not in context["task_state_store"].values

    def test_timeout_accepts_a_timedelta(self) -> None:
        assert operator(timeout=timedelta(minutes=3)).timeout == 180.0

    @pytest.mark.parametrize(
        ("kwargs", "named"),
        [
            ({"poll_interval": 0}, "poll_interval"),
            ({"poll_interval": 0.5}, "poll_interval"),
            ({"poll_interval": float("nan")}, "poll_interval"),
            ({"poll_interval": float("inf")}, "poll_interval"),
            ({"poll_interval": "five"}, "poll_interval"),
            ({"poll_interval": True}, "poll_interval"),
            ({"timeout": -1}, "timeout"),
            ({"timeout": float("nan")}, "timeout"),
            ({"not_found_grace": "soon"}, "not_found_grace"),
            ({"on_lost_generation": "retry"}, "on_lost_generation"),
        ],
    )
    def test_nonsense_waits_are_refused_at_parse_time(self, kwargs, named) -> None:
        with pytest.raises(ValueError, match=rf"generate: {named} must be"):
            operator(**kwargs)

    def test_a_poll_interval_from_a_template_string_is_read_as_seconds(self) -> None:
        assert operator(poll_interval="15").poll_interval == 15.0

    def test_template_fields(self) -> None:
        assert set(InfinityBlueGenerateVideoOperator.template_fields) == {
            "prompt",
            "model",
            "image",
            "duration",
            "width",
            "height",
            "fps",
            "seed",
            "metadata",
            "user",
        }
        assert set(InfinityBlueGenerateVideoOperator.template_ext) == {".txt", ".j2"}


class TestResume:
    def test_execute_complete_success_pushes_and_returns_the_url(self) -> None:
        context = task_context()
        event = {"status": "success", "generation_id": "t1", "message": "", "video_url": "https://cdn/t1.mp4"}
        assert operator().execute_complete(context, event) == "https://cdn/t1.mp4"
        assert context["ti"].xcom == {"video_url": "https://cdn/t1.mp4"}

    @pytest.mark.parametrize(
        ("event", "error", "fragments"),
        [
            (
                {
                    "status": "failed",
                    "generation_id": "t1",
                    "message": "Prompt refused",
                    "error_code": "content_policy_violation",
                },
                InfinityBlueGenerationFailedError,
                ["t1", "Prompt refused", "content_policy_violation"],
            ),
            (
                {"status": "cancelled", "generation_id": "t1", "message": "stopped"},
                InfinityBlueGenerationFailedError,
                ["t1", "cancelled"],
            ),
            (
                {"status": "timeout", "generation_id": "t1", "message": "may still finish: t1"},
                InfinityBlueWaitTimeoutError,
                ["t1"],
            ),
            (
                {"status": "error", "generation_id": "t1", "message": "HTTP 401 bad key"},
                InfinityBlueError,
                ["HTTP 401"],
            ),
            (
                {
                    "status": "error",
                    "generation_id": "t1",
                    "message": "The InfinityBlue API rejected the API key: revoked [HTTP 401]",
                    "error_type": "InfinityBlueAuthenticationError",
                    "status_code": 401,
                },
                InfinityBlueAuthenticationError,
                ["revoked", "HTTP 401"],
            ),
            (None, InfinityBlueError, ["Expected an InfinityBlue trigger event"]),
            ({"status": "weird", "generation_id": "t1"}, InfinityBlueError, ["Unrecognised"]),
        ],
    )
    def test_execute_complete_raises_for_every_other_outcome(self, event, error, fragments) -> None:
        context = task_context()
        with pytest.raises(error) as caught:
            operator().execute_complete(context, event)
        for fragment in fragments:
            assert fragment in str(caught.value)
        assert "video_url" not in context["ti"].xcom


DURABLE_RETRIES = pytest.mark.airflow(">=3.3", feature="durable retries through the task state store")


class TestDurableRetries:
    @DURABLE_RETRIES
    @pytest.mark.parametrize("deferrable", [True, False])
    def test_reattaches_to_a_running_generation(self, hook, requests_mock, deferrable) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "new", "status": "queued"})
        requests_mock.get(STATUS_URL, [RUNNING, DONE])
        store = MemoryTaskStateStore(infinityblue_task_id="t1")
        context = task_context(store)
        if deferrable:
            with pytest.raises(TaskDeferred) as deferred:
                operator(deferrable=True).execute(context)
            assert deferred.value.trigger.generation_id == "t1"
        else:
            assert operator(deferrable=False).execute(context) == "https://cdn/t1.mp4"
        assert posts(requests_mock) == 0
        assert context["ti"].xcom["infinityblue_task_id"] == "t1"

    @DURABLE_RETRIES
    @pytest.mark.parametrize("deferrable", [True, False])
    def test_returns_a_completed_generation_without_submitting(self, hook, requests_mock, deferrable) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "new", "status": "queued"})
        requests_mock.get(STATUS_URL, [DONE])
        context = task_context(MemoryTaskStateStore(infinityblue_task_id="t1"))
        assert operator(deferrable=deferrable).execute(context) == "https://cdn/t1.mp4"
        assert posts(requests_mock) == 0
        assert requests_mock.call_count == 1
        assert context["ti"].xcom == {
            "infinityblue_task_id": "t1",
            "model": "kling-v2-5-turbo",
            "video_url": "https://cdn/t1.mp4",
        }

    @DURABLE_RETRIES
    @pytest.mark.parametrize(
        ("previous", "policy"),
        [(FAILED, "fail"), ({"json": {"task_id": "t1", "status": "cancelled"}}, "fail"), (NOT_FOUND, "resubmit")],
        ids=["failed", "cancelled", "lost-and-resubmit"],
    )
    def test_submits_anew_when_the_previous_failed_or_is_lost_and_told_to(
        self, hook, requests_mock, previous, policy
    ) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t2", "status": "queued"})
        requests_mock.get(STATUS_URL, [previous])
        requests_mock.get(
            f"{SUBMIT_URL}/t2", [{"json": {"task_id": "t2", "status": "completed", "url": "https://cdn/t2.mp4"}}]
        )
        store = MemoryTaskStateStore(infinityblue_task_id="t1")
        context = task_context(store)
        assert operator(deferrable=True, on_lost_generation=policy).execute(context) == "https://cdn/t2.mp4"
        assert posts(requests_mock) == 1
        assert store.values["infinityblue_task_id"] == "t2"
        assert store.values[SUBMISSION_KEY]["generation_id"] == "t2"

    @DURABLE_RETRIES
    @pytest.mark.parametrize("deferrable", [True, False])
    def test_a_404_soon_after_the_submission_reattaches(self, hook, requests_mock, deferrable) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "new", "status": "queued"})
        requests_mock.get(STATUS_URL, [NOT_FOUND, NOT_FOUND, DONE])
        submitted = {"state": "submitted", "generation_id": "t1", "submitted_at": time.time() - 20}
        context = task_context(MemoryTaskStateStore(infinityblue_task_id="t1", **{SUBMISSION_KEY: submitted}))
        if deferrable:
            with pytest.raises(TaskDeferred) as deferred:
                operator(deferrable=True).execute(context)
            assert deferred.value.trigger.submitted_at == submitted["submitted_at"]
        else:
            assert operator(deferrable=False).execute(context) == "https://cdn/t1.mp4"
        assert posts(requests_mock) == 0

    @DURABLE_RETRIES
    @pytest.mark.parametrize("record", [True, False], ids=["past-the-grace", "no-submission-time"])
    def test_a_lost_generation_fails_clearly_by_default(self, hook, requests_mock, record) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "new", "status": "queued"})
        requests_mock.get(STATUS_URL, [NOT_FOUND])
        values = {"infinityblue_task_id": "t1"}
        if record:
            values[SUBMISSION_KEY] = {"state": "submitted", "generation_id": "t1", "submitted_at": time.time() - 900}
        with pytest.raises(InfinityBlueError, match="t1") as caught:
            operator().execute(task_context(MemoryTaskStateStore(**values)))
        assert posts(requests_mock) == 0
        if record:
            assert isinstance(caught.value, InfinityBlueGenerationLostError)
            assert "may still be billed" in str(caught.value)
            assert 'on_lost_generation="resubmit"' in str(caught.value)
        else:
            assert isinstance(caught.value, InfinityBlueNotFoundError)

    @DURABLE_RETRIES
    def test_the_id_is_stored_before_anything_else_can_fail(self, hook, requests_mock, monkeypatch) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t1", "status": "queued"})
        store = MemoryTaskStateStore()
        context = task_context(store)

        def worker_lost(**kwargs) -> None:
            raise RuntimeError("worker lost right after the POST")

        monkeypatch.setattr(context["ti"], "xcom_push", worker_lost)
        with pytest.raises(RuntimeError, match="worker lost"):
            operator().execute(context)
        assert store.values["infinityblue_task_id"] == "t1"
        assert store.values[SUBMISSION_KEY]["state"] == "submitted"


class TestUnconfirmedSubmissions:
    """A "submitting" record without an id: an earlier try died between the POST and recording its answer."""

    MARKER = {"state": "submitting", "fingerprint": "ab" * 32, "started_at": 1_764_500_000.0}

    @DURABLE_RETRIES
    def test_is_never_silently_submitted_again(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t2", "status": "queued"})
        store = MemoryTaskStateStore(**{SUBMISSION_KEY: dict(self.MARKER)})
        with pytest.raises(InfinityBlueAmbiguousSubmitError, match="never recorded the API's answer") as caught:
            operator().execute(task_context(store))
        assert posts(requests_mock) == 0
        assert "2025-11-30T10:53:20+00:00" in str(caught.value)
        assert "abababab" in str(caught.value)

    @DURABLE_RETRIES
    def test_resubmits_when_told_to(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t2", "status": "queued"})
        requests_mock.get(
            f"{SUBMIT_URL}/t2", [{"json": {"task_id": "t2", "status": "completed", "url": "https://cdn/t2.mp4"}}]
        )
        store = MemoryTaskStateStore(**{SUBMISSION_KEY: dict(self.MARKER)})
        assert operator(on_lost_generation="resubmit").execute(task_context(store)) == "https://cdn/t2.mp4"
        assert posts(requests_mock) == 1
        assert store.values[SUBMISSION_KEY]["state"] == "submitted"

    @DURABLE_RETRIES
    def test_a_refused_submission_leaves_no_marker(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, status_code=400, json={"error": {"message": "bad model", "code": "x"}})
        store = MemoryTaskStateStore()
        with pytest.raises(InfinityBlueError, match="bad model"):
            operator().execute(task_context(store))
        assert store.values == {}

    @DURABLE_RETRIES
    def test_the_marker_is_written_before_the_post(self, hook, requests_mock) -> None:
        store = MemoryTaskStateStore()
        seen = []

        def answer(request, context):
            seen.append(dict(store.values))
            return {"task_id": "t1", "status": "queued"}

        requests_mock.post(SUBMIT_URL, json=answer)
        operator(wait_for_completion=False).execute(task_context(store))
        (before_post,) = seen
        assert before_post[SUBMISSION_KEY]["state"] == "submitting"
        assert len(before_post[SUBMISSION_KEY]["fingerprint"]) == 64


class TestWaitsOnce:
    def test_a_fresh_worker_mode_run_pushes_the_video_url_once(self, hook, requests_mock, capsys) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t1", "status": "queued"})
        requests_mock.get(STATUS_URL, [DONE])
        pushes = []
        context = task_context()
        recorded = context["ti"].xcom_push
        context["ti"].xcom_push = lambda key, value: (pushes.append(key), recorded(key, value))
        assert operator(deferrable=False).execute(context) == "https://cdn/t1.mp4"
        assert pushes.count("video_url") == 1
        assert capsys.readouterr().out.count("InfinityBlue video ready") == 1

    @DURABLE_RETRIES
    def test_without_a_state_store_it_still_runs_and_warns_once(self, hook, requests_mock, capsys) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t1", "status": "queued"})
        requests_mock.get(STATUS_URL, [DONE])
        assert operator(deferrable=True).execute(task_context(with_store=False)) == "https://cdn/t1.mp4"
        warnings = [line for line in capsys.readouterr().out.splitlines() if "task_state_store not available" in line]
        assert len(warnings) == 1

    def test_durable_false_always_submits(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t2", "status": "queued"})
        requests_mock.get(
            f"{SUBMIT_URL}/t2", [{"json": {"task_id": "t2", "status": "completed", "url": "https://cdn/t2.mp4"}}]
        )
        context = task_context(MemoryTaskStateStore(infinityblue_task_id="t1"))
        assert operator(durable=False).execute(context) == "https://cdn/t2.mp4"
        assert posts(requests_mock) == 1


@pytest.mark.airflow("<3.3", feature="retries without the task state store")
class TestRetriesWithoutTheTaskStateStore:
    def test_every_try_submits_anew_and_says_so_once(self, hook, requests_mock, capsys) -> None:
        requests_mock.post(SUBMIT_URL, [{"json": {"task_id": "t1", "status": "queued"}}, {"json": {"task_id": "t2"}}])
        requests_mock.get(STATUS_URL, [FAILED])
        requests_mock.get(
            f"{SUBMIT_URL}/t2", [{"json": {"task_id": "t2", "status": "completed", "url": "https://cdn/t2.mp4"}}]
        )
        with pytest.raises(InfinityBlueGenerationFailedError):
            operator(deferrable=False).execute(task_context(with_store=False))
        first_try = capsys.readouterr().out
        assert operator(deferrable=False).execute(task_context(with_store=False)) == "https://cdn/t2.mp4"
        second_try = capsys.readouterr().out
        assert posts(requests_mock) == 2
        for log in (first_try, second_try):
            assert log.count("will submit a new job instead of re-attaching") == 1

    def test_durable_false_says_nothing(self, hook, requests_mock, capsys) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "t1", "status": "queued"})
        requests_mock.get(STATUS_URL, [DONE])
        assert operator(durable=False).execute(task_context(with_store=False)) == "https://cdn/t1.mp4"
        assert "re-attaching" not in capsys.readouterr().out


def test_extra_link_on_the_worker_uses_the_operators_url_without_xcom(monkeypatch) -> None:
    from airflow.providers.common.compat.sdk import XCom

    def no_lookup(*args, **kwargs):
        raise AssertionError("no XCom lookup expected")

    monkeypatch.setattr(XCom, "get_value", no_lookup)
    link = InfinityBlueVideoLink()
    live = operator()
    assert link.get_link(live, ti_key=object()) == ""  # deferred: no video yet
    live.execute_complete(
        task_context(), {"status": "success", "generation_id": "t1", "video_url": "https://cdn/t1.mp4"}
    )
    assert link.get_link(live, ti_key=object()) == "https://cdn/t1.mp4"
    assert link.name == "InfinityBlue video"
    assert any(isinstance(item, InfinityBlueVideoLink) for item in live.operator_extra_links)


def test_extra_link_elsewhere_reads_the_video_url_xcom(monkeypatch) -> None:
    from airflow.providers.common.compat.sdk import XCom

    stored = {"video_url": "https://cdn/t1.mp4"}
    monkeypatch.setattr(XCom, "get_value", classmethod(lambda cls, *, ti_key, key: stored.get(key)))
    serialized_operator = object()  # what a process other than the worker holds: no live attributes
    assert InfinityBlueVideoLink().get_link(serialized_operator, ti_key=object()) == "https://cdn/t1.mp4"
    stored.clear()
    assert InfinityBlueVideoLink().get_link(serialized_operator, ti_key=object()) == ""
