"""Real Airflow (``dag.test()``, deferrals run inline) against the local emulator on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_infinityblue.testing import EmulatorHandle, running_emulator
from airflow_provider_infinityblue.version_compat import AIRFLOW_V_3_1_PLUS
from tests.conftest import FAKE_API_KEY, set_connection, without_airflow_30_mask_messages
from tests.loopback import LoopbackServer, Reply

# The example DAGs read their poll interval when parsed (once per session): keep it short for the emulator.
os.environ["INFINITYBLUE_EXAMPLE_POLL_SECONDS"] = "1"

REPO = Path(__file__).parents[2]
DAG_FILES = [
    REPO / "tests" / "integration" / "dags" / "infinityblue_e2e.py",
    REPO / "tests" / "integration" / "dags" / "infinityblue_wait_modes.py",
    REPO / "tests" / "integration" / "dags" / "infinityblue_batch.py",
    REPO / "tests" / "integration" / "dags" / "infinityblue_hostile_api.py",
    *sorted((REPO / "example_dags").glob("*.py")),
]


@dataclass
class DagRunResult:
    """What a DAG run left behind: its state, each task's state and tries, its XComs and its logs."""

    state: str
    tasks: dict[str, tuple[str, int]]
    xcom: dict[tuple[str, str], Any]
    rendered: dict[str, dict[str, Any]]
    logs: str = field(repr=False)
    mapped_xcom: dict[tuple[str, str], dict[int, Any]] = field(default_factory=dict, repr=False)
    durations: dict[str, float] = field(default_factory=dict, repr=False)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata database in this test session's AIRFLOW_HOME (see the root conftest)."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=300)
    if not AIRFLOW_V_3_1_PLUS:
        # Airflow 3.0's dag.test() does not register the DAG, so the Assets of its outlets are unknown to
        # the database and the task fails: register every DAG first, as a DAG processor would.
        subprocess.run([str(airflow), "dags", "reserialize"], check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def dags(airflow_db: None) -> dict[str, Any]:
    """Every DAG the tests run, by id, loaded from its file as the DAG processor would."""
    from airflow.sdk import DAG

    found: dict[str, Any] = {}
    for path in DAG_FILES:
        spec = importlib.util.spec_from_file_location(f"dags_under_test_{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found.update({value.dag_id: value for value in vars(module).values() if isinstance(value, DAG)})
    return found


@pytest.fixture
def loopback_api(monkeypatch: pytest.MonkeyPatch):
    """Start a loopback API answering ``answers`` in order, with ``infinityblue_default`` pointing at it.

    ``start(answers, password=..., extra={...})``; every server started is stopped after the test.
    """
    servers: list[LoopbackServer] = []

    def start(answers: list[Reply], *, password: str = FAKE_API_KEY, extra: dict[str, Any]) -> LoopbackServer:
        server = LoopbackServer(list(answers)).__enter__()
        servers.append(server)
        set_connection(monkeypatch, host=server.url, password=password, extra=json.dumps(extra))
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """An emulator that insists on the test key, with ``infinityblue_default`` pointing at it."""
    with running_emulator(generation_seconds=0.5, api_key=FAKE_API_KEY) as handle:
        monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", handle.airflow_connection(FAKE_API_KEY))
        yield handle


@pytest.fixture
def run_dag(dags: dict[str, Any], capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture):
    """Run one DAG with ``dag.test()`` and collect what it left behind."""

    def run(dag_id: str, run_conf: dict[str, Any] | None = None, *, with_logical_date: bool = True) -> DagRunResult:
        """``with_logical_date=False`` runs it as a manual or Asset-triggered run is made: without one."""
        from airflow.models.renderedtifields import RenderedTaskInstanceFields
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        capfd.readouterr()
        caplog.clear()
        caplog.set_level(logging.DEBUG)
        dates = {} if with_logical_date else {"logical_date": None}
        dag_run = dags[dag_id].test(run_conf=run_conf, **dates)
        captured = capfd.readouterr()
        logs = without_airflow_30_mask_messages("\n".join((captured.out, captured.err, caplog.text)))
        with create_session() as session:
            scope = {"dag_id": dag_id, "run_id": dag_run.run_id}
            tis = session.scalars(select(TaskInstance).filter_by(**scope)).all()
            xcoms = session.scalars(select(XComModel).filter_by(**scope)).all()
            rendered = session.scalars(select(RenderedTaskInstanceFields).filter_by(**scope, map_index=-1)).all()
            mapped: dict[tuple[str, str], dict[int, Any]] = {}
            for x in xcoms:
                mapped.setdefault((x.task_id, x.key), {})[x.map_index] = XComModel.deserialize_value(x)
            return DagRunResult(
                state=str(dag_run.state),
                tasks={ti.task_id: (str(ti.state), ti.try_number) for ti in tis if ti.map_index < 0},
                xcom={key: values[-1] for key, values in mapped.items() if -1 in values},
                rendered={r.task_id: r.rendered_fields for r in rendered},
                logs=logs,
                mapped_xcom=mapped,
                durations={ti.task_id: ti.duration for ti in tis if ti.map_index < 0 and ti.duration is not None},
            )

    return run


# -- S3 (moto's server on 127.0.0.1): the object storage of the download and batch tests --------------

S3_REGION = "us-east-1"


@pytest.fixture(scope="module")
def s3_endpoint() -> str:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A fresh bucket, and the name of an Airflow ``aws`` connection pointing at the loopback S3."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_S3_REGION": S3_REGION,
        # Nothing from the developer's own AWS setup may take part.
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    # One connection id per server: Airflow caches the filesystem of each (scheme, connection).
    conn_id = f"moto_s3_{urlsplit(s3_endpoint).port}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "aws", "extra": {"endpoint_url": s3_endpoint, "region_name": S3_REGION}}),
    )
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=S3_REGION)
    bucket = f"videos-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket, conn_id
