"""Real Airflow (``dag.test()``, deferrals run inline) against the local emulator on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_infinityblue.testing import EmulatorHandle, running_emulator
from tests.conftest import FAKE_API_KEY

DAGS_FOLDER = Path(__file__).parent / "dags"


@dataclass
class DagRunResult:
    """What a DAG run left behind: its state, each task's state and tries, its XComs and its logs."""

    state: str
    tasks: dict[str, tuple[str, int]]
    xcom: dict[tuple[str, str], Any]
    rendered: dict[str, dict[str, Any]]
    logs: str = field(repr=False)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata database in this test session's AIRFLOW_HOME (see the root conftest)."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def e2e_dags(airflow_db: None) -> Any:
    spec = importlib.util.spec_from_file_location("infinityblue_e2e_dags", DAGS_FOLDER / "infinityblue_e2e.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """An emulator that insists on the test key, with ``infinityblue_default`` pointing at it."""
    with running_emulator(generation_seconds=0.5, api_key=FAKE_API_KEY) as handle:
        monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", handle.airflow_connection(FAKE_API_KEY))
        yield handle


@pytest.fixture
def run_dag(e2e_dags: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture):
    """Run one DAG with ``dag.test()`` and collect what it left behind."""

    def run(dag_id: str) -> DagRunResult:
        from airflow.models.renderedtifields import RenderedTaskInstanceFields
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        dag = next(value for value in vars(e2e_dags).values() if getattr(value, "dag_id", None) == dag_id)
        capfd.readouterr()
        caplog.clear()
        caplog.set_level(logging.DEBUG)
        dag_run = dag.test()
        captured = capfd.readouterr()
        with create_session() as session:
            scope = {"dag_id": dag_id, "run_id": dag_run.run_id}
            tis = session.scalars(select(TaskInstance).filter_by(**scope)).all()
            xcoms = session.scalars(select(XComModel).filter_by(**scope)).all()
            rendered = session.scalars(select(RenderedTaskInstanceFields).filter_by(**scope)).all()
            return DagRunResult(
                state=str(dag_run.state),
                tasks={ti.task_id: (str(ti.state), ti.try_number) for ti in tis},
                xcom={(x.task_id, x.key): XComModel.deserialize_value(x) for x in xcoms},
                rendered={r.task_id: r.rendered_fields for r in rendered},
                logs="\n".join((captured.out, captured.err, caplog.text)),
            )

    return run
