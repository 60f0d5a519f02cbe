"""Run the example DAGs on a real local deployment, against the InfinityBlue emulator, until Ctrl-C.

    python -m deploy                                   # LocalExecutor, one triggerer
    python -m deploy --executor celery --triggerers 2  # CeleryExecutor, Redis, two workers, two triggerers
    python -m deploy --database sqlite                 # SQLite instead of a throwaway PostgreSQL cluster

It prints the UI's address, the admin password and each component's PID and log; stop one with
``kill <pid>`` to watch the others cope. Everything is stopped on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

from airflow_provider_infinityblue.testing import emulator_process
from deploy.deployment import ADMIN_USER, DATABASES, CeleryDeployment, LocalDeployment

REPO = Path(__file__).parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--executor", choices=("local", "celery"), default="local")
    parser.add_argument(
        "--database",
        choices=DATABASES,
        default="postgresql",
        help="metadata DB: a throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql), or SQLite in the home",
    )
    parser.add_argument("--home", type=Path, help="AIRFLOW_HOME to create (default: a new temporary folder)")
    parser.add_argument("--triggerers", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (CeleryExecutor only)")
    parser.add_argument("--parallelism", type=int, default=4, help="[core] parallelism: worker slots")
    parser.add_argument("--generation-seconds", type=float, default=10.0, help="how long emulated videos take")
    options = parser.parse_args(argv)

    home = options.home or Path(tempfile.mkdtemp(prefix="infinityblue-airflow-"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with emulator_process(generation_seconds=options.generation_seconds) as emulator:
        settings: dict[str, Any] = {
            "home": home,
            "dag_folders": {"examples": REPO / "example_dags"},
            "parallelism": options.parallelism,
            "triggerers": options.triggerers,
            "database": options.database,
            "environment": {
                "AIRFLOW_CONN_INFINITYBLUE_DEFAULT": emulator.airflow_connection(),
                "INFINITYBLUE_EXAMPLE_POLL_SECONDS": "2",
            },
        }
        deployment = (
            CeleryDeployment(celery_workers=options.workers, **settings)
            if options.executor == "celery"
            else LocalDeployment(**settings)
        )
        print(f"Starting Airflow in {home} ...", flush=True)
        with deployment:
            # The pool the prompt backfill example asks for, counting deferred generations.
            deployment.api.set_pool("infinityblue_generations", 8, include_deferred=True)
            print(
                f"\nAirflow UI and API: {deployment.base_url}  (user {ADMIN_USER!r}, password {deployment.password!r})"
            )
            print(f"InfinityBlue emulator: {emulator.url} (pid {emulator.pid})")
            print(f"Metadata DB: {deployment.database_url}")
            for name, process in deployment.components.items():
                print(f"  {name:14} pid {process.pid:<7} log {process.log_path}")
            print(f"\nCLI: AIRFLOW_HOME={home} airflow dags list   (DAGs start paused)\nCtrl-C stops everything.")
            with suppress(KeyboardInterrupt):
                stop.wait()
            print("Stopping ...", flush=True)


if __name__ == "__main__":
    main()
