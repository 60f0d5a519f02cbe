"""A real Airflow 3 deployment on loopback: every component its own process, in a throwaway home.

What ``airflow standalone`` runs in one process tree, this starts as separate processes so that a
test (or a person) can stop, kill and restart any one of them: the API server, the scheduler (with
its LocalExecutor), the DAG processor, one or more triggerers, and for the CeleryExecutor a Redis
broker and Celery workers. The metadata database is a throwaway PostgreSQL cluster of its own
(:class:`deploy.postgres.PostgresCluster`; ``database="sqlite"`` for a SQLite file in the home instead,
which serialises every write). Ports are picked free on 127.0.0.1; logs go to ``<home>/logs/components``;
everything is stopped by its process group when the ``with`` block ends, also on an error, and the
PostgreSQL cluster is stopped and deleted last.

Example::

    with emulator_process(generation_seconds=5) as emulator, LocalDeployment(
        home=Path("/tmp/airflow-demo"),
        dag_folders={"examples": Path("example_dags")},
        environment={"AIRFLOW_CONN_INFINITYBLUE_DEFAULT": emulator.airflow_connection()},
    ) as airflow:
        airflow.api.unpause("example_infinityblue_text_to_video")
        run_id = airflow.api.trigger("example_infinityblue_text_to_video")
        airflow.api.wait_for_run("example_infinityblue_text_to_video", run_id, timeout=300)
"""

from __future__ import annotations

import configparser
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy.api import AirflowApi, AirflowApiError
from deploy.postgres import PostgresCluster
from deploy.processes import LOOPBACK, DeploymentError, ManagedProcess, StartStop, free_port, tail, wait_until

if TYPE_CHECKING:
    from collections.abc import Mapping

ADMIN_USER = "admin"
STARTUP_TIMEOUT_SECONDS = 120.0
MIGRATE_TIMEOUT_SECONDS = 300.0
# Variables of the caller's own Airflow (a test session's home, its connections) must not leak in.
_FOREIGN_VARIABLE_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")
TRIGGERER_ARGUMENTS = ["triggerer", "--skip-serve-logs"]
DATABASES = ("postgresql", "sqlite")
_JOB_TYPES = {"scheduler": "SchedulerJob", "dag-processor": "DagProcessorJob", "triggerer": "TriggererJob"}


def _airflow_executable() -> str:
    """The ``airflow`` script of the running interpreter's environment (a venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "airflow"
    found = str(beside) if beside.exists() else shutil.which("airflow")
    if found is None:
        raise DeploymentError("No `airflow` executable beside the Python interpreter or on PATH")
    return found


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class AirflowDeployment(StartStop):
    """Airflow's components as separate processes sharing one home, one metadata DB and one API server.

    :param home: a fresh directory for ``AIRFLOW_HOME`` (the config, logs, a SQLite DB); kept afterwards.
    :param dag_folders: folders linked into the DAGs folder, by the name of their link.
    :param executor: ``LocalExecutor`` or ``CeleryExecutor``.
    :param parallelism: ``[core] parallelism``: the scheduler's cap on running task instances, and for
        the LocalExecutor its number of worker processes (worker slots).
    :param triggerers: how many triggerers to start.
    :param celery_workers: how many Celery workers to start (CeleryExecutor only).
    :param worker_concurrency: task slots per Celery worker.
    :param environment: extra environment for every component (connections, DAG settings).
    :param config: ``{section: {key: value}}`` written to ``airflow.cfg`` over the defaults chosen here.
    :param database: the metadata DB: ``postgresql`` (a throwaway cluster on loopback, needs Debian's
        ``postgresql``) or ``sqlite`` (``<home>/airflow.db``; every write serialised).
    """

    def __init__(
        self,
        *,
        home: Path,
        dag_folders: Mapping[str, Path],
        executor: str = "LocalExecutor",
        parallelism: int = 2,
        triggerers: int = 1,
        celery_workers: int = 0,
        worker_concurrency: int = 1,
        environment: Mapping[str, str] | None = None,
        config: Mapping[str, Mapping[str, object]] | None = None,
        database: str = "postgresql",
    ) -> None:
        if executor not in ("LocalExecutor", "CeleryExecutor"):
            raise ValueError(f"executor must be LocalExecutor or CeleryExecutor, not {executor!r}")
        if celery_workers and executor != "CeleryExecutor":
            raise ValueError("celery_workers needs executor='CeleryExecutor'")
        if database not in DATABASES:
            raise ValueError(f"database must be one of {', '.join(DATABASES)}, not {database!r}")
        self.home = home.resolve()
        self.dag_folders = {name: Path(folder).resolve() for name, folder in dag_folders.items()}
        self.executor = executor
        self.parallelism = parallelism
        self.triggerer_count = triggerers
        self.celery_worker_count = celery_workers
        self.worker_concurrency = worker_concurrency
        self.extra_environment = dict(environment or {})
        self.config_overrides = {section: dict(values) for section, values in (config or {}).items()}
        self.api_port = free_port()
        self.broker_port = free_port() if executor == "CeleryExecutor" else None
        self.base_url = f"http://{LOOPBACK}:{self.api_port}"
        self.password = secrets.token_urlsafe(16)
        self.components: dict[str, ManagedProcess] = {}
        # The Job id each scheduler / DAG processor / triggerer process registered, by component name.
        self.job_ids: dict[str, int] = {}
        self.api = AirflowApi(self.base_url, ADMIN_USER, self.password)
        self.database = database
        self.postgres = (
            PostgresCluster(log_path=self.component_logs / "postgres.log") if database == "postgresql" else None
        )

    # -- paths --------------------------------------------------------------------------------

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    @property
    def component_logs(self) -> Path:
        return self.home / "logs" / "components"

    @property
    def task_logs(self) -> Path:
        return self.home / "logs"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything; components of different kinds start side by side to save time."""
        if self.postgres is not None:
            self.postgres.start()
        self._prepare_home()
        self._migrate_database()
        if self.broker_port is not None:
            self._launch("redis", self._broker_command())
        self._launch("api-server", ["api-server", "--host", LOOPBACK, "--port", str(self.api_port)])
        self._launch("scheduler", ["scheduler", "--skip-serve-logs"])
        self._launch("dag-processor", ["dag-processor"])
        if self.triggerer_count:
            self._launch("triggerer-1", TRIGGERER_ARGUMENTS)
        for number in range(1, self.celery_worker_count + 1):
            self._launch(f"worker-{number}", self._celery_worker_arguments(f"worker-{number}"))
        for name in list(self.components):
            self._wait_until_ready(name)
        # Two triggerers are told apart by the order their jobs appear in: start the others one by one.
        for number in range(2, self.triggerer_count + 1):
            self.start_component(f"triggerer-{number}", TRIGGERER_ARGUMENTS)

    def stop(self) -> None:
        """Stop every component, the newest first, each by its process group; then the database."""
        try:
            for component in reversed(list(self.components.values())):
                component.stop()
            self.api.close()
        finally:
            if self.postgres is not None:
                self.postgres.stop()

    @property
    def database_url(self) -> str:
        """The metadata DB's SQLAlchemy URL (``[database] sql_alchemy_conn``)."""
        return self.postgres.url if self.postgres is not None else f"sqlite:///{self.home / 'airflow.db'}"

    # -- components ---------------------------------------------------------------------------

    def start_component(self, name: str, arguments: list[str]) -> ManagedProcess:
        """Start ``airflow <arguments>`` as the component ``name`` and wait until it is ready."""
        process = self._launch(name, arguments)
        self._wait_until_ready(name)
        return process

    def start_triggerer(self, name: str) -> ManagedProcess:
        return self.start_component(name, TRIGGERER_ARGUMENTS)

    def _launch(self, name: str, arguments: list[str]) -> ManagedProcess:
        command = arguments if name == "redis" else [_airflow_executable(), *arguments]
        process = self.components.get(name) or ManagedProcess(
            name, command, self.component_logs / f"{name}.log", self.environment()
        )
        self.components[name] = process
        process.start()
        return process

    def _celery_worker_arguments(self, name: str) -> list[str]:
        arguments = ["celery", "worker", "--skip-serve-logs", "--concurrency", str(self.worker_concurrency)]
        return [*arguments, "--celery-hostname", f"{name}@%h"]

    def stop_component(self, name: str) -> None:
        """A graceful stop (SIGTERM), as in a rolling restart."""
        self.components[name].stop()

    def kill_component(self, name: str) -> None:
        """SIGKILL the component's whole process group: a crash, nothing cleaned up."""
        self.components[name].kill()

    def restart_component(self, name: str) -> ManagedProcess:
        process = self.components[name]
        process.stop()
        process.start()
        self._wait_until_ready(name)
        return process

    def environment(self) -> dict[str, str]:
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith(_FOREIGN_VARIABLE_PREFIXES)
        }
        environment.update(
            AIRFLOW_HOME=str(self.home),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
        )
        environment.update(self.extra_environment)
        return environment

    # -- diagnostics --------------------------------------------------------------------------

    def log_tails(self, lines: int = 40) -> str:
        """The end of every component's log, for a failure message."""
        parts = []
        for name, process in self.components.items():
            state = "running" if process.running else f"exited with {process.exit_code}"
            parts.append(f"==== {name} (pid {process.pid}, {state}): {process.log_path}\n{process.log_tail(lines)}")
        if self.postgres is not None:
            state = "running" if self.postgres.running else "stopped"
            parts.append(f"==== postgres ({state}): {self.postgres.log_path}\n{tail(self.postgres.log_path, lines)}")
        return "\n".join(parts)

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int = 1) -> str:
        """A task try's log file, read from the shared logs folder."""
        folder = self.task_logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        return tail(folder / f"attempt={try_number}.log", lines=100_000)

    def trigger_log(
        self, dag_id: str, run_id: str, task_id: str, triggerer_job_id: int, map_index: int = -1, try_number: int = 1
    ) -> str:
        """What a trigger logged while triggerer job ``triggerer_job_id`` ran it (empty if it never did)."""
        folder = self.task_logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        path = folder / f"attempt={try_number}.log.trigger.{triggerer_job_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- setup --------------------------------------------------------------------------------

    def _prepare_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(exist_ok=True)
        for name, folder in self.dag_folders.items():
            link = self.dags_folder / name
            if not link.exists():
                link.symlink_to(folder, target_is_directory=True)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}))
        config = configparser.ConfigParser(interpolation=None)
        config.read_dict(self._config())
        with (self.home / "airflow.cfg").open("w") as out:
            config.write(out)

    def _config(self) -> dict[str, dict[str, str]]:
        database = self.database_url
        sections: dict[str, dict[str, object]] = {
            "core": {
                "dags_folder": self.dags_folder,
                "executor": self.executor,
                "parallelism": self.parallelism,
                "load_examples": False,
                "auth_manager": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "simple_auth_manager_users": f"{ADMIN_USER}:admin",
                "simple_auth_manager_passwords_file": self.home / "passwords.json",
                "execution_api_server_url": f"{self.base_url}/execution/",
            },
            "database": {"sql_alchemy_conn": database},
            "api": {
                "host": LOOPBACK,
                "port": self.api_port,
                "base_url": self.base_url,
                "workers": 1,
                "secret_key": secrets.token_hex(16),
            },
            "api_auth": {"jwt_secret": secrets.token_hex(32)},
            "logging": {"base_log_folder": self.task_logs},
            "scheduler": {"enable_health_check": False},
        }
        if self.executor == "CeleryExecutor":
            sections["celery"] = {
                "broker_url": f"redis://{LOOPBACK}:{self.broker_port}/0",
                "result_backend": f"db+{database}" if self.postgres is None else self.postgres.celery_result_backend,
                "worker_concurrency": self.worker_concurrency,
                "worker_prefetch_multiplier": 1,
            }
        for section, values in self.config_overrides.items():
            sections.setdefault(section, {}).update(values)
        return {section: {key: str(value) for key, value in values.items()} for section, values in sections.items()}

    def _migrate_database(self) -> None:
        log_path = self.component_logs / "db-migrate.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            try:
                result = subprocess.run(
                    [_airflow_executable(), "db", "migrate"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.environment(),
                    timeout=MIGRATE_TIMEOUT_SECONDS,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise DeploymentError(
                    f"`airflow db migrate` took over {MIGRATE_TIMEOUT_SECONDS:g} s:\n{tail(log_path)}"
                ) from None
        if result.returncode != 0:
            raise DeploymentError(f"`airflow db migrate` failed ({result.returncode}):\n{tail(log_path)}")

    def _broker_command(self) -> list[str]:
        executable = shutil.which("redis-server")
        if executable is None:
            raise DeploymentError(
                "The CeleryExecutor deployment needs a Redis broker, and `redis-server` is not installed "
                "(Debian: apt-get install redis-server)"
            )
        broker_dir = self.home / "redis"
        broker_dir.mkdir(exist_ok=True)
        command = [executable, "--bind", LOOPBACK, "--port", str(self.broker_port), "--dir", str(broker_dir)]
        return [*command, "--save", "", "--appendonly", "no", "--protected-mode", "yes"]

    # -- readiness ----------------------------------------------------------------------------

    def _wait_until_ready(self, name: str) -> None:
        process = self.components[name]

        def ready() -> bool:
            if not process.running:
                raise DeploymentError(f"{name} exited with {process.exit_code} while starting:\n{process.log_tail(60)}")
            return self._is_ready(name, process)

        try:
            wait_until(ready, timeout=STARTUP_TIMEOUT_SECONDS, what=f"{name} to be ready")
        except DeploymentError as error:
            raise DeploymentError(f"{error}\n{process.log_tail(60)}") from None

    def _is_ready(self, name: str, process: ManagedProcess) -> bool:
        if name == "redis":
            return self._broker_answers()
        if name == "api-server":
            try:
                self.api.health()
            except (AirflowApiError, OSError):
                return False
            return True
        if name.startswith("worker-"):
            return f"{name}@" in process.log_path.read_text(errors="replace") and " ready." in process.log_tail(200)
        job_type = _JOB_TYPES["triggerer" if name.startswith("triggerer") else name]
        assert process.started_at is not None
        known = set(self.job_ids.values())
        for job in self.api.jobs(job_type):
            if job["id"] in known or job["end_date"] is not None or not job["latest_heartbeat"]:
                continue
            started = _parse_time(job["start_date"])
            # A second of slack: the job's start is stamped by the process itself, after we forked it.
            if started >= process.started_at - 1 and _parse_time(job["latest_heartbeat"]) >= started:
                self.job_ids[name] = int(job["id"])
                return True
        return False

    def _broker_answers(self) -> bool:
        assert self.broker_port is not None
        try:
            with socket.create_connection((LOOPBACK, self.broker_port), timeout=1.0) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    # -- observations -------------------------------------------------------------------------

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float) -> dict[str, Any]:
        """:meth:`AirflowApi.wait_for_run`, with every component's log tail in the error on a timeout."""
        try:
            return self.api.wait_for_run(dag_id, run_id, timeout=timeout)
        except DeploymentError as error:
            raise DeploymentError(f"{error}\n{self.log_tails()}") from None


class LocalDeployment(AirflowDeployment):
    """Scheduler with the LocalExecutor (``parallelism`` worker processes), DAG processor, triggerer(s), API."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(executor="LocalExecutor", **settings)


class CeleryDeployment(AirflowDeployment):
    """As :class:`LocalDeployment`, with the CeleryExecutor: a Redis broker and ``celery_workers`` workers."""

    def __init__(self, *, celery_workers: int = 2, **settings: Any) -> None:
        super().__init__(executor="CeleryExecutor", celery_workers=celery_workers, **settings)
