"""The deployment's metadata database: a throwaway PostgreSQL cluster that leaves nothing behind.

It must serve Airflow's connection string on 127.0.0.1 only, and be gone after ``stop()`` — also
after its harness is SIGKILLed: then the kernel stops the server (parent-death signal) and the next
start deletes the folder, or, for a server that outlived its harness, stops it and deletes the folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy

from deploy.deployment import CeleryDeployment
from deploy.postgres import CLUSTER_PARENT, CLUSTER_PREFIX, PostgresCluster, find_server_binaries
from deploy.processes import DeploymentError, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.deployment

REPO = Path(__file__).parents[2]


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port``, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if state == "0A" and int(local_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add(f"ipv6:{address}")
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def select_one(url: str) -> list[tuple[object, ...]]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            query = "SELECT 1, current_database(), current_setting('max_connections'), current_setting('fsync')"
            return [tuple(row) for row in connection.execute(sqlalchemy.text(query))]
    finally:
        engine.dispose()


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as started:
        yield started


def test_airflows_connection_string_works(cluster: PostgresCluster) -> None:
    assert cluster.url.startswith(f"postgresql+psycopg2://airflow:{cluster.password}@127.0.0.1:{cluster.port}/airflow")
    assert select_one(cluster.url) == [(1, "airflow", "200", "off")]
    assert cluster.celery_result_backend.startswith("db+postgresql")


def test_it_listens_on_loopback_only(cluster: PostgresCluster) -> None:
    assert listening_addresses(cluster.port) == {"127.0.0.1"}


def test_a_wrong_password_is_refused(cluster: PostgresCluster) -> None:
    with pytest.raises(sqlalchemy.exc.OperationalError, match="password authentication failed"):
        select_one(cluster.url.replace(cluster.password, "wrong"))


def test_stop_stops_the_server_and_deletes_its_folder() -> None:
    cluster = PostgresCluster()
    cluster.start()
    folder, pid = cluster.directory, cluster.pid
    assert folder is not None
    assert folder.parent == CLUSTER_PARENT
    assert folder.name.startswith(CLUSTER_PREFIX)
    assert (folder / "data" / "postmaster.pid").exists()
    cluster.stop()
    assert not folder.exists()
    assert not alive(pid)
    assert listening_addresses(cluster.port) == set()


def test_missing_server_binaries_say_how_to_install_them(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match=r"apt-get install postgresql"):
        find_server_binaries(str(tmp_path / "*" / "bin"))


def test_the_newest_installed_version_is_chosen(tmp_path: Path) -> None:
    for version in ("9.6", "15", "13"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "initdb").touch()
    assert find_server_binaries(str(tmp_path / "*" / "bin")) == tmp_path / "15" / "bin"


HARNESS = textwrap.dedent(
    """
    import json, sys, time
    from deploy.postgres import PostgresCluster

    cluster = PostgresCluster(die_with_parent=sys.argv[1] == "yes")
    cluster.start()
    print(json.dumps({"folder": str(cluster.directory), "pid": cluster.pid}), flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("die_with_parent", [True, False], ids=["server-dies-with-harness", "server-outlives-harness"])
def test_a_sigkilled_harness_leaves_nothing_the_next_start_does_not_sweep(die_with_parent: bool) -> None:
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS, "yes" if die_with_parent else "no"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert harness.stdout is not None
        started = json.loads(harness.stdout.readline())
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait()
    folder, pid = Path(started["folder"]), int(started["pid"])
    try:
        if die_with_parent:
            wait_until(lambda: not alive(pid), timeout=30, what="the server to die with its harness")
        else:
            assert alive(pid), "the server was meant to outlive its harness"
        assert folder.exists(), "the killed harness could not delete the cluster's folder"

        with PostgresCluster() as successor:  # its start sweeps the abandoned cluster
            assert not folder.exists()
            assert not alive(pid)
            assert select_one(successor.url)[0][0] == 1
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_the_deployment_configures_its_database(database: str, tmp_path: Path) -> None:
    deployment = CeleryDeployment(home=tmp_path, dag_folders={}, database=database)
    config = deployment._config()
    if database == "postgresql":
        assert deployment.postgres is not None
        assert config["database"]["sql_alchemy_conn"] == deployment.postgres.url
        assert config["celery"]["result_backend"].startswith("db+postgresql+psycopg2://airflow:")
    else:
        assert deployment.postgres is None
        assert config["database"]["sql_alchemy_conn"] == f"sqlite:///{tmp_path.resolve() / 'airflow.db'}"
        assert config["celery"]["result_backend"] == f"db+sqlite:///{tmp_path.resolve() / 'airflow.db'}"
    with pytest.raises(ValueError, match="database must be one of postgresql, sqlite"):
        CeleryDeployment(home=tmp_path, dag_folders={}, database="mysql")
