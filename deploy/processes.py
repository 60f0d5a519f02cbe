"""Long-running processes that are started in their own process group and stopped by it.

Every Airflow component forks helpers (the scheduler's LocalExecutor workers, a task's supervisor
and task process, Celery's pool, the triggerer's runner), so stopping only the PID we started
would leave orphans behind. Each process is therefore started as the leader of a new session and
stopped by signalling its process group (whose id is its PID), never by name. A task process
starts a session of its own, outside that group: it is found as a descendant (through ``/proc``)
before the stop, and killed by its PID if it outlives its parents.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import TracebackType
    from typing import Self

LOOPBACK = "127.0.0.1"


class DeploymentError(RuntimeError):
    """A component did not start, stopped on its own, or something did not happen in time."""


class StartStop:
    """Something a ``with`` block starts and always stops: also when starting fails half-way, so that what
    did start (a server, a process) is not left behind."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.5) -> object:
    """Call ``condition`` until it returns something truthy, and return that; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DeploymentError(f"Timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist."""
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _process_table() -> dict[int, tuple[int, int]]:
    """``{pid: (parent pid, start time in clock ticks)}`` for every process, from ``/proc/<pid>/stat``."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited meanwhile
            continue
        # The command name (field 2) may hold spaces and parentheses: split after its closing one.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return table


def descendants_of(pid: int) -> dict[int, int]:
    """Every process below ``pid``, as ``{pid: start time}`` (the start time tells a reused PID apart)."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found: dict[int, int] = {}
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found[child] = table[child][1]
        pending.extend(children.get(child, []))
    return found


def parent_of(pid: int) -> int | None:
    """The parent of a running process, or ``None`` if it is gone."""
    found = _process_table().get(pid)
    return found[0] if found else None


def _kill_survivors(processes: dict[int, int]) -> None:
    """SIGKILL those of ``processes`` still alive, each by its PID, unless the PID now belongs to another."""
    if not processes:
        return
    table = _process_table()
    for pid, started in processes.items():
        if pid in table and table[pid][1] == started:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class ManagedProcess:
    """One command, run in its own process group, with stdout and stderr appended to a log file.

    Example::

        sleeper = ManagedProcess("sleeper", ["sleep", "30"], home / "sleeper.log", dict(os.environ))
        sleeper.start()
        sleeper.stop()   # SIGTERM to the group, SIGKILL to what is left
    """

    def __init__(self, name: str, command: Sequence[str], log_path: Path, environment: Mapping[str, str]) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self.environment = dict(environment)
        self._process: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise DeploymentError(f"{self.name} has not been started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def start(self) -> None:
        if self.running:
            raise DeploymentError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"---- starting {self.name}: {' '.join(self.command)}\n".encode())
            log.flush()
            # A file, not a pipe: nobody reads a pipe while the tests run, and a full one would block Airflow.
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment,
                start_new_session=True,
            )
        self.started_at = time.time()

    def stop(self, *, timeout: float = 20.0) -> None:
        """SIGTERM to the whole group (a graceful shutdown), then SIGKILL to what is left after ``timeout``."""
        if self._process is None:
            return
        descendants = descendants_of(self._process.pid)
        self._signal_group(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self._process.wait()
        # Children that outlived their leader (a pool worker in the group, a task in its own session) go too.
        self._signal_group(signal.SIGKILL)
        _kill_survivors(descendants)

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, with no chance to clean up."""
        if self._process is None:
            return
        descendants = descendants_of(self._process.pid)
        self._signal_group(signal.SIGKILL)
        self._process.wait()
        _kill_survivors(descendants)

    def _signal_group(self, signum: int) -> None:
        assert self._process is not None
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signum)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)
