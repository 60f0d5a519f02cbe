"""A throwaway PostgreSQL cluster on 127.0.0.1, for a deployment's metadata database.

SQLite serialises every write, so a deployment (or a benchmark) on it measures SQLite. This starts
Debian's PostgreSQL server (``apt-get install postgresql``: the binaries under
``/usr/lib/postgresql/<version>/bin``, which are not on PATH) in a fresh directory under ``/tmp``,
tuned for a test (no fsync), with a database and a password-protected user for Airflow.

``initdb`` and ``postgres`` refuse to run as root: as root they run as the ``postgres`` system user,
and the cluster's directory is that user's (under ``/tmp``, since root's home is usually closed to it).
Otherwise they run as ourselves.

Nothing is left behind, even when the harness is SIGKILLed:

- the postmaster is our child, and the kernel sends it SIGQUIT (PostgreSQL's immediate shutdown) when
  the thread that started it dies (``PR_SET_PDEATHSIG``; start the cluster from a thread that outlives
  it, such as the main thread);
- the cluster's directory (``/tmp/infinityblue-pg-*``) records its owner's PID and start time; every
  :meth:`PostgresCluster.start` first sweeps the clusters whose owner is gone: their postmaster is
  stopped and their directory deleted (:func:`sweep_abandoned_clusters`).

Example::

    with PostgresCluster() as cluster:
        engine = sqlalchemy.create_engine(cluster.url)  # postgresql+psycopg2://airflow:...@127.0.0.1:<port>/airflow
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    # the server is stopped and its directory deleted
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

from deploy.processes import LOOPBACK, DeploymentError, StartStop, _process_table, free_port, tail, wait_until

SERVER_BINARIES = "/usr/lib/postgresql/*/bin"
CLUSTER_PREFIX = "infinityblue-pg-"
CLUSTER_PARENT = Path("/tmp")
OWNER_FILE = "owner.json"
SYSTEM_USER = "postgres"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
# A directory without an owner file is one being created right now, unless it is older than this.
_UNOWNED_GRACE_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1
# For a throwaway test database: durability off, and room for every component's connection pool
# (scheduler, API server, DAG processor, triggerers, LocalExecutor workers, Celery workers).
SETTINGS: dict[str, object] = {
    "listen_addresses": LOOPBACK,
    "max_connections": 200,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}


def find_server_binaries(pattern: str = SERVER_BINARIES) -> Path:
    """The newest PostgreSQL version's server binary folder (the one with ``initdb``)."""

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name)) or (0,)

    found = [folder for folder in map(Path, glob.glob(pattern)) if (folder / "initdb").is_file()]
    if not found:
        raise DeploymentError(
            f"The deployment's metadata database is PostgreSQL, and its server is not installed (no {pattern}/initdb): "
            "run `apt-get install postgresql` (Debian; .ci/run does it), or pass --database sqlite / database='sqlite'"
        )
    return max(found, key=version)


def _start_time(pid: int) -> int | None:
    """A running process's start time in clock ticks (tells a reused PID apart), or ``None`` if it is gone."""
    found = _process_table().get(pid)
    return found[1] if found else None


def _die_with_parent(parent: int) -> None:
    """In the child before ``exec``: get SIGQUIT when the parent's thread dies; exit if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT, 0, 0, 0) != 0:
        os._exit(70)
    if os.getppid() != parent:
        os._exit(71)


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(data_dir).encode() in command


def _stop_postmaster(pid: int, data_dir: Path, *, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGQUIT (immediate shutdown: it stops its backends) then SIGKILL, if ``pid`` is that cluster's postmaster."""
    for signum in (signal.SIGQUIT, signal.SIGKILL):
        if not _is_postmaster_of(pid, data_dir):
            return
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
        deadline = time.monotonic() + timeout
        # A zombie (exited, not yet reaped by its parent) has an empty cmdline: it does not count.
        while _is_postmaster_of(pid, data_dir) and time.monotonic() < deadline:
            time.sleep(0.1)


def _postmaster_pid(data_dir: Path) -> int | None:
    with suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    return None


def sweep_abandoned_clusters(parent: Path = CLUSTER_PARENT) -> list[Path]:
    """Stop and delete the clusters whose owner process is gone (a SIGKILLed harness); return their folders."""
    swept = []
    for folder in sorted(parent.glob(f"{CLUSTER_PREFIX}*")):
        try:
            owner = json.loads((folder / OWNER_FILE).read_text())
            if _start_time(int(owner["pid"])) == owner["start_time"]:
                continue  # its harness is alive
        except PermissionError:
            continue  # another user's cluster: not ours to judge
        except (OSError, ValueError, KeyError, TypeError):
            # No owner (yet), or a half-written one: a cluster being created right now, unless it is old.
            try:
                if time.time() - folder.stat().st_mtime < _UNOWNED_GRACE_SECONDS:
                    continue
            except OSError:
                continue
        data_dir = folder / "data"
        postmaster = _postmaster_pid(data_dir)
        if postmaster is not None:
            _stop_postmaster(postmaster, data_dir)
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            swept.append(folder)
    return swept


class PostgresCluster(StartStop):
    """A PostgreSQL server on 127.0.0.1 with one database, from ``start()`` (or ``with``) until ``stop()``.

    :param database: the database created for the caller, and the name of its user.
    :param log_path: where the server logs (default: in the cluster's folder, deleted with it).
    :param die_with_parent: have the kernel stop the server when this process dies (see the module docstring).
    :param binaries: the folder with ``initdb`` and ``postgres`` (default: the newest installed version's).
    """

    def __init__(
        self,
        *,
        database: str = "airflow",
        log_path: Path | None = None,
        die_with_parent: bool = True,
        binaries: Path | None = None,
    ) -> None:
        self.database = database
        self.user = database
        self.password = secrets.token_hex(16)
        self.port = free_port()
        self.die_with_parent = die_with_parent
        self._binaries = binaries
        self._log_path = log_path
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- addresses ------------------------------------------------------------------------------

    def url_for(self, scheme: str) -> str:
        return f"{scheme}://{self.user}:{self.password}@{LOOPBACK}:{self.port}/{self.database}"

    @property
    def url(self) -> str:
        """SQLAlchemy's URL, as Airflow's ``[database] sql_alchemy_conn`` wants it."""
        return self.url_for("postgresql+psycopg2")

    @property
    def celery_result_backend(self) -> str:
        """Celery's database result backend on this database (``[celery] result_backend``)."""
        return self.url_for("db+postgresql+psycopg2")

    @property
    def data_dir(self) -> Path:
        if self.directory is None:
            raise DeploymentError("The PostgreSQL cluster has not been started")
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        if self._log_path is not None:
            return self._log_path
        if self.directory is None:
            raise DeploymentError("The PostgreSQL cluster has not been started")
        return self.directory / "postgres.log"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise DeploymentError("The PostgreSQL cluster has not been started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Sweep abandoned clusters, then create this one, start its server and create the database."""
        binaries = self._binaries or find_server_binaries()
        run_as = self._system_user()
        sweep_abandoned_clusters()
        self.directory = Path(tempfile.mkdtemp(prefix=CLUSTER_PREFIX, dir=CLUSTER_PARENT))
        # Recorded first, so that a harness killed from here on leaves a cluster the next start sweeps.
        owner = {"pid": os.getpid(), "start_time": _start_time(os.getpid())}
        (self.directory / OWNER_FILE).write_text(json.dumps(owner))
        password_file = self.directory / "password"
        password_file.write_text(self.password)
        if run_as is not None:
            for path in (self.directory, password_file):
                os.chown(path, run_as.pw_uid, run_as.pw_gid)
        self._run(
            [
                str(binaries / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                self.user,
                "--pwfile",
                str(password_file),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",  # the socket is in a folder only the server's user can enter
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            run_as,
            "initdb",
        )
        password_file.unlink()
        self._launch(binaries, run_as)
        createdb = [str(binaries / "createdb"), "--host", LOOPBACK, "--port", str(self.port)]
        self._run(
            [*createdb, "--username", self.user, self.database],
            None,
            "createdb",
            extra_environment={"PGPASSWORD": self.password},
        )

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and delete the cluster's folder."""
        if self._process is not None:
            if self.directory is not None:
                _stop_postmaster(self._process.pid, self.data_dir)
            with suppress(ProcessLookupError, PermissionError):
                self._process.kill()
            self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    # -- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _system_user() -> pwd.struct_passwd | None:
        """The user the server runs as: ``postgres`` when we are root (it refuses root), else ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise DeploymentError(
                f"PostgreSQL refuses to run as root, and there is no {SYSTEM_USER!r} user to run it as "
                "(Debian's `apt-get install postgresql` creates it)"
            ) from None

    def _user_arguments(self, run_as: pwd.struct_passwd | None) -> dict[str, Any]:
        if run_as is None:
            return {}
        return {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": []}

    def _environment(self, run_as: pwd.struct_passwd | None) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        environment.update(LC_ALL="C", LANG="C")
        if run_as is not None:
            environment.update(HOME=run_as.pw_dir, USER=run_as.pw_name, LOGNAME=run_as.pw_name)
        return environment

    def _run(
        self,
        command: list[str],
        run_as: pwd.struct_passwd | None,
        what: str,
        extra_environment: dict[str, str] | None = None,
    ) -> None:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env={**self._environment(run_as), **(extra_environment or {})},
            cwd=CLUSTER_PARENT,
            timeout=START_TIMEOUT_SECONDS,
            check=False,
            **self._user_arguments(run_as),
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-3000:]
            raise DeploymentError(f"PostgreSQL's `{what}` failed ({result.returncode}):\n{output}")

    def _launch(self, binaries: Path, run_as: pwd.struct_passwd | None) -> None:
        assert self.directory is not None
        settings = {**SETTINGS, "port": self.port, "unix_socket_directories": self.directory}
        command = [str(binaries / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        parent = os.getpid()
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._environment(run_as),
            cwd=CLUSTER_PARENT,
            # Its own session: a Ctrl-C in the terminal reaches the harness, which stops the server last.
            start_new_session=True,
            preexec_fn=(lambda: _die_with_parent(parent)) if self.die_with_parent else None,
            **self._user_arguments(run_as),
        )

        def ready() -> bool:
            if not self.running:
                raise DeploymentError(
                    f"PostgreSQL exited with {self._process and self._process.poll()} while starting:\n"
                    f"{tail(self.log_path)}"
                )
            # postmaster.pid's 8th line is the server's status; pg_ctl waits for "ready" the same way.
            with suppress(OSError):
                lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
                return len(lines) >= 8 and lines[7].strip() == "ready"
            return False

        try:
            wait_until(ready, timeout=START_TIMEOUT_SECONDS, what="PostgreSQL to accept connections", interval=0.1)
        except DeploymentError as error:
            raise DeploymentError(f"{error}\n{tail(self.log_path)}") from None
