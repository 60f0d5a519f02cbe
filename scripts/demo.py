"""`make demo`: run the daily text-to-video example end to end with real Airflow, in about a minute.

Without ``INFINITYBLUE_API_KEY`` it starts the local InfinityBlue emulator on a free port; with it, it
talks to the real API (``INFINITYBLUE_BASE_URL`` overrides the default base URL). Airflow runs from a
throwaway home in ``.demo/`` of this checkout (``--workdir`` elsewhere): kept afterwards so the video stays on
disk, replaced by the next run, removed by ``make clean``. Each step says what it does; a failed step
says which one and why, and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "example_infinityblue_text_to_video"
DEFAULT_WORKDIR = REPO / ".demo"
AIRFLOW = Path(sys.executable).parent / "airflow"
STEPS = 5


class DemoStepFailed(Exception):
    """A step could not be done; the message says why."""


@contextmanager
def step(number: int, title: str) -> Iterator[None]:
    print(f"[{number}/{STEPS}] {title} ...", flush=True)
    started = time.monotonic()
    try:
        yield
    except DemoStepFailed as failure:
        print(f"\nDemo failed at step {number}/{STEPS} ({title}): {failure}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"      done in {time.monotonic() - started:.1f} s", flush=True)


def run_logged(command: list[str], log: Path, env: dict[str, str], timeout: float) -> int:
    """Run ``command`` with its output appended to ``log``; return its exit code."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        try:
            return subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            raise DemoStepFailed(f"`{' '.join(command[1:3])}` took more than {timeout:.0f} s; see {log}") from None


# Colours, and the frames of a rich traceback (Airflow 3.0 prints them): not what a reader needs quoted.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
TRACEBACK_FRAME = re.compile(r"[│╭╰]")


def why_it_failed(log: Path) -> str:
    """The provider's error lines from a failed run's log, or the log's tail when there are none."""
    lines = (ANSI_ESCAPE.sub("", line) for line in log.read_text(errors="replace").splitlines())
    errors = [line for line in lines if "InfinityBlue" in line and "Error" in line and not TRACEBACK_FRAME.search(line)]
    return "\n".join("      " + line.strip() for line in dict.fromkeys(errors)) if errors else tail(log)


def tail(log: Path, lines: int = 15) -> str:
    return "\n".join("      " + line for line in log.read_text(errors="replace").splitlines()[-lines:])


def is_mp4(path: Path) -> bool:
    head = path.read_bytes()[:12]
    return len(head) == 12 and head[4:8] == b"ftyp"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where to put the Airflow home, the log and the video; emptied first (default: .demo/ of this checkout)",
    )
    parser.add_argument("--print-outcome", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.print_outcome:
        print_outcome()
        return 0
    workdir = args.workdir.resolve()
    api_key = os.environ.get("INFINITYBLUE_API_KEY", "").strip()
    home, videos, log = workdir / "airflow-home", workdir / "videos", workdir / "demo.log"

    with ExitStack() as cleanup:
        with step(1, f"Preparing a throwaway Airflow home in {home}"):
            # Only what an earlier demo made: a --workdir pointed at something else keeps its other files.
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(videos, ignore_errors=True)
            log.unlink(missing_ok=True)
            home.mkdir(parents=True)
            videos.mkdir(exist_ok=True)
            env = {
                **os.environ,
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "INFINITYBLUE_EXAMPLE_POLL_SECONDS": "10" if api_key else "1",
            }

        if api_key:
            with step(2, "Using the real InfinityBlue API (INFINITYBLUE_API_KEY is set)"):
                connection = {
                    "conn_type": "infinityblue",
                    "host": os.environ.get("INFINITYBLUE_BASE_URL", ""),
                    "password": api_key,
                }
                env["AIRFLOW_CONN_INFINITYBLUE_DEFAULT"] = json.dumps(connection)
        else:
            with step(2, "Starting the local InfinityBlue emulator (no INFINITYBLUE_API_KEY set)"):
                from airflow_provider_infinityblue.emulator.runners import emulator_process

                try:
                    emulator = cleanup.enter_context(emulator_process(generation_seconds=3))
                except (OSError, RuntimeError, TimeoutError) as error:
                    raise DemoStepFailed(f"the emulator did not start: {error}") from error
                env["AIRFLOW_CONN_INFINITYBLUE_DEFAULT"] = emulator.airflow_connection()
                print(f"      listening on {emulator.url}")

        with step(3, "Creating the Airflow metadata database"):
            if run_logged([str(AIRFLOW), "db", "migrate"], log, env, timeout=300) != 0:
                raise DemoStepFailed(f"`airflow db migrate` failed:\n{tail(log)}\n(full log: {log})")

        with step(4, f"Running the DAG {DAG_ID} (generate, then download)"):
            conf = json.dumps({"output_dir": str(videos)})
            run_logged([str(AIRFLOW), "dags", "test", DAG_ID, "--conf", conf], log, env, timeout=900)
            outcome = read_outcome(env)
            if outcome["state"] != "success":
                raise DemoStepFailed(f"the DAG run ended {outcome['state']}:\n{why_it_failed(log)}\n(full log: {log})")

        with step(5, "Checking the downloaded video"):
            video = Path(outcome["file"])
            if not video.is_file() or not is_mp4(video):
                raise DemoStepFailed(f"{video} is not an MP4 file")

    print()
    print(f"Video URL:  {outcome['url']}")
    print(f"Video file: {video} ({video.stat().st_size:,} bytes, sha256 {outcome['sha256'][:16]}…)")
    print(f"Airflow log of the run: {log}")
    print(f"All of it is kept in {workdir}: the next `make demo` replaces it, `make clean` removes it.")
    return 0


def read_outcome(env: dict[str, str]) -> dict[str, Any]:
    """The run's state and XComs, read by a child process that has the demo's Airflow environment."""
    command = [sys.executable, __file__, "--print-outcome"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise DemoStepFailed(f"could not read the run's outcome: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_outcome() -> None:
    """Print the latest run's state, video URL, file and checksum as JSON (runs in the demo's env)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID).order_by(DagRun.id.desc())).first()
        if run is None:
            raise SystemExit(f"no run of {DAG_ID} was recorded")
        rows = session.scalars(select(XComModel).where(XComModel.dag_id == DAG_ID, XComModel.run_id == run.run_id))
        values = {(row.task_id, row.key): XComModel.deserialize_value(row) for row in rows}
    outcome = {
        "state": str(run.state),
        "url": values.get(("generate", "video_url")),
        "file": values.get(("download", "return_value")),
        "sha256": values.get(("download", "sha256")),
    }
    print(json.dumps(outcome))


if __name__ == "__main__":
    raise SystemExit(main())
