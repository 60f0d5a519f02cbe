"""A small client for the Airflow 3 public REST API (``/api/v2``), authenticated with a JWT.

It does what a user or a CI job does with a deployment, through the same door: log in at
``/auth/token``, unpause a DAG, trigger it with a ``conf``, watch the run and its task
instances, read XComs and Asset events, answer human-in-the-loop steps, and manage pools and jobs.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import requests

from deploy.processes import DeploymentError

FINISHED_RUN_STATES = frozenset({"success", "failed"})
# A human-in-the-loop task waiting for its answer: parked on Airflow 3.3+, deferred to a trigger before.
HITL_WAITING_STATES = frozenset({"awaiting_input", "deferred"})


class AirflowApiError(DeploymentError):
    """The API answered with an error status."""


class AirflowApi:
    """Talks to one API server as one user; the token is fetched on first use and renewed on a 401.

    Example::

        api = AirflowApi("http://127.0.0.1:8080", "admin", "secret")
        api.unpause("example_infinityblue_text_to_video")
        run_id = api.trigger("example_infinityblue_text_to_video", conf={"output_dir": "/tmp/videos"})
        run = api.wait_for_run("example_infinityblue_text_to_video", run_id, timeout=300)
    """

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # loopback: no proxy from the environment
        self._token: str | None = None

    def close(self) -> None:
        self._session.close()

    # -- HTTP ---------------------------------------------------------------------------------

    def login(self) -> str:
        answer = self._session.post(f"{self.base_url}/auth/token", json=self._credentials, timeout=self._timeout)
        if answer.status_code >= 400:
            raise AirflowApiError(f"POST /auth/token answered {answer.status_code}: {answer.text[:500]}")
        self._token = str(answer.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``path`` is relative to ``/api/v2``; answers the decoded JSON (``None`` for an empty body)."""
        for attempt in (1, 2):
            token = self._token or self.login()
            answer = self._session.request(
                method,
                f"{self.base_url}/api/v2{path}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=self._timeout,
                **kwargs,
            )
            if answer.status_code == 401 and attempt == 1:
                self._token = None
                continue
            if answer.status_code >= 400:
                raise AirflowApiError(f"{method} /api/v2{path} answered {answer.status_code}: {answer.text[:1000]}")
            return answer.json() if answer.content else None
        raise AssertionError("unreachable")

    # -- DAGs and runs ------------------------------------------------------------------------

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as the API knows it, or ``None`` while the DAG processor has not parsed it yet."""
        try:
            return dict(self.request("GET", f"/dags/{quote(dag_id)}"))
        except AirflowApiError as error:
            if " answered 404" in str(error):
                return None
            raise

    def wait_for_dag(self, dag_id: str, *, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (found := self.dag(dag_id)) is None:
            if time.monotonic() > deadline:
                errors = self.request("GET", "/importErrors")
                raise DeploymentError(
                    f"DAG {dag_id} was not parsed within {timeout:g} s; import errors: {errors['import_errors']}"
                )
            time.sleep(1.0)
        return found

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{quote(dag_id)}", json={"is_paused": False})

    def trigger(self, dag_id: str, *, conf: dict[str, Any] | None = None, logical_date: str | None = None) -> str:
        """Start a manual run now; answers its run id.

        Without ``logical_date`` the run has none (Airflow 3's default for manual runs), and templates
        that use ``ds`` or ``logical_date`` cannot render: give one for such DAGs.
        """
        body = {"logical_date": logical_date, "conf": conf or {}}
        return str(self.request("POST", f"/dags/{quote(dag_id)}/dagRuns", json=body)["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}"))

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float, interval: float = 1.0) -> dict[str, Any]:
        """Poll the run until it succeeds or fails; answers the run. Raises with the task states on a timeout."""
        deadline = time.monotonic() + timeout
        while (run := self.run(dag_id, run_id))["state"] not in FINISHED_RUN_STATES:
            if time.monotonic() > deadline:
                states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in self.task_instances(dag_id, run_id)}
                raise DeploymentError(
                    f"Run {run_id} of {dag_id} still {run['state']!r} after {timeout:g} s; tasks: {states}"
                )
            time.sleep(interval)
        return run

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, mapped ones included, with its trigger and triggerer job."""
        answer = self.request(
            "GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances", params={"limit": 1000}
        )
        return list(answer["task_instances"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        path = f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        return dict(self.request("GET", path))

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of one task instance, oldest first."""
        path = f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}"
        path += f"/{map_index}/tries" if map_index >= 0 else "/tries"
        return list(self.request("GET", path)["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        path = f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}/xcomEntries/{quote(key)}"
        return self.request("GET", path, params={"map_index": map_index, "deserialize": True})["value"]

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of the DAG, oldest first."""
        answer = self.request("GET", f"/dags/{quote(dag_id)}/dagRuns", params={"limit": 1000, "order_by": "id"})
        return list(answer["dag_runs"])

    def asset_events(self, asset_name: str, *, source_run_id: str | None = None) -> list[dict[str, Any]]:
        """Events on the Asset called ``asset_name``, oldest first; only those a run made, with ``source_run_id``."""
        params: dict[str, Any] = {"name_pattern": asset_name, "limit": 1000, "order_by": "timestamp"}
        if source_run_id is not None:
            params["source_run_id"] = source_run_id
        events = self.request("GET", "/assets/events", params=params)["asset_events"]
        return [event for event in events if event["name"] == asset_name]  # the pattern also matches longer names

    # -- human in the loop (Airflow 3.1+) -----------------------------------------------------

    def pending_hitl_details(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's human-in-the-loop requests that no one has answered yet, each with its task instance."""
        path = f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/hitlDetails"
        return list(self.request("GET", path, params={"response_received": False})["hitl_details"])

    def wait_for_hitl_detail(
        self, dag_id: str, run_id: str, task_id: str, *, timeout: float, interval: float = 1.0
    ) -> dict[str, Any]:
        """Poll until task ``task_id`` of the run waits for an answer; answers its request.

        Waiting means the request is written and the task parked: ``awaiting_input`` on Airflow 3.3+,
        ``deferred`` before. Raises with the task states if it does not wait within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            for detail in self.pending_hitl_details(dag_id, run_id):
                task_instance = detail["task_instance"]
                if task_instance["task_id"] == task_id and task_instance["state"] in HITL_WAITING_STATES:
                    return detail
            if time.monotonic() > deadline:
                states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in self.task_instances(dag_id, run_id)}
                raise DeploymentError(
                    f"{task_id} of {dag_id} {run_id} asked for no answer within {timeout:g} s; tasks: {states}"
                )
            time.sleep(interval)

    def respond_to_hitl(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        chosen_options: list[str],
        params_input: dict[str, Any] | None = None,
        map_index: int = -1,
    ) -> dict[str, Any]:
        """Answer a waiting human-in-the-loop step as this API user, as the UI's form does; answers the
        recorded response. The task resumes with it; a second answer is refused (409)."""
        path = f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}/{map_index}/hitlDetails"
        body = {"chosen_options": chosen_options, "params_input": params_input or {}}
        return dict(self.request("PATCH", path, json=body))

    # -- pools and jobs -----------------------------------------------------------------------

    def set_pool(self, name: str, slots: int, *, include_deferred: bool, description: str = "") -> None:
        """Create the pool, or change it if it exists (``airflow pools set`` through the API)."""
        body = {"name": name, "slots": slots, "include_deferred": include_deferred, "description": description}
        try:
            self.request("POST", "/pools", json=body)
        except AirflowApiError as error:
            if " answered 409" not in str(error):
                raise
            self.request("PATCH", f"/pools/{quote(name)}", json=body)

    def jobs(self, job_type: str) -> list[dict[str, Any]]:
        """Jobs of one type (``SchedulerJob``, ``TriggererJob``, ``DagProcessorJob``), newest first."""
        answer = self.request("GET", "/jobs", params={"job_type": job_type, "limit": 100, "order_by": "-id"})
        return list(answer["jobs"])

    def health(self) -> dict[str, Any]:
        return dict(self.request("GET", "/monitor/health"))
