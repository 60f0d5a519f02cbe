"""running_emulator, emulator_process, EmulatorHandle and the pytest fixtures."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import requests

from airflow_provider_infinityblue.emulator import (
    DEFAULT_FAKE_API_KEY,
    EmulatorHandle,
    InvalidSettingError,
    emulator_process,
    running_emulator,
)
from tests.emulator.conftest import ApiClient


def port_is_open(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, int(port))) == 0


def test_running_emulator_serves_on_loopback_and_closes_its_port_on_exit() -> None:
    with running_emulator(generation_seconds=0.2) as emulator:
        assert emulator.url.startswith("http://127.0.0.1:")
        assert port_is_open(emulator.url)
        assert ApiClient(emulator.url).submit().status_code == 200
        assert emulator.stats()["submissions"] == 1
    assert not port_is_open(emulator.url)


def test_running_emulator_stops_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError), running_emulator() as emulator:
        _ = 1 / 0
    assert not port_is_open(emulator.url)


def test_two_emulators_run_side_by_side_with_their_own_state() -> None:
    with running_emulator() as first, running_emulator(shape="wrapped") as second:
        ApiClient(first.url).submit()
        assert first.url != second.url
        assert (first.stats()["submissions"], second.stats()["submissions"]) == (1, 0)


def test_running_emulator_reports_a_port_it_cannot_bind() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="could not start"), running_emulator(port=port):
            pass


def test_settings_are_checked_before_anything_starts() -> None:
    with pytest.raises(InvalidSettingError, match="failure_rate"), running_emulator(failure_rate=3):
        pass
    with pytest.raises(InvalidSettingError, match="shape"), emulator_process(shape="xml"):
        pass


def test_emulator_process_runs_the_module_and_stops_it_by_pid() -> None:
    with emulator_process(generation_seconds=0.1, shape="wrapped", api_key="sk-process-key") as emulator:
        assert emulator.url.startswith("http://127.0.0.1:")
        assert emulator.api_key == "sk-process-key"
        api = ApiClient(emulator.url, api_key="sk-process-key")
        payload = api.wait_until_finished(api.submit_id())
        assert payload["data"]["status"] == "SUCCESS"
        assert emulator.configure(failure_rate=0.5)["failure_rate"] == 0.5
        emulator.reset()
        assert emulator.stats()["submissions"] == 0
        pid = emulator.pid
    assert not port_is_open(emulator.url)
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        _signal_zero(pid)


def test_emulator_process_stops_when_the_block_raises() -> None:
    with pytest.raises(KeyError), emulator_process() as emulator:
        raise KeyError("boom")
    assert not port_is_open(emulator.url)


def _signal_zero(pid: int) -> None:
    import os

    os.kill(pid, 0)


def test_the_handle_builds_an_airflow_connection() -> None:
    handle = EmulatorHandle(url="http://127.0.0.1:9")
    assert json.loads(handle.airflow_connection()) == {
        "conn_type": "infinityblue",
        "host": "http://127.0.0.1:9",
        "password": DEFAULT_FAKE_API_KEY,
    }
    assert json.loads(handle.airflow_connection(api_key="sk-mine"))["password"] == "sk-mine"
    keyed = EmulatorHandle(url="http://127.0.0.1:9", api_key="sk-required")
    assert json.loads(keyed.airflow_connection())["password"] == "sk-required"
    with_extra = json.loads(handle.airflow_connection(extra={"max_attempts": 2}))
    assert json.loads(with_extra["extra"]) == {"max_attempts": 2}
    assert "sk-required" not in repr(keyed)


def test_the_fixture_gives_a_running_emulator_with_half_second_generations(infinityblue_emulator) -> None:
    assert infinityblue_emulator.configure()["generation_seconds"] == 0.5
    assert requests.get(f"{infinityblue_emulator.url}/_emulator/stats", timeout=10).status_code == 200


def test_the_connection_fixture_points_the_default_connection_at_it(infinityblue_connection, monkeypatch) -> None:
    import os

    connection = json.loads(os.environ["AIRFLOW_CONN_INFINITYBLUE_DEFAULT"])
    assert connection["host"] == infinityblue_connection.url
    assert connection["conn_type"] == "infinityblue"
    assert connection["password"].startswith("sk-")


def test_the_plugin_is_registered_with_pytest() -> None:
    plugins = {entry.name: entry.value for entry in entry_points(group="pytest11")}
    assert plugins["infinityblue"] == "airflow_provider_infinityblue.testing"


def test_importing_the_plugin_imports_neither_aiohttp_nor_airflow() -> None:
    probe = (
        "import sys, airflow_provider_infinityblue.testing\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'airflow'))\n"
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_helpers_import_and_run_where_pytest_cannot_be_imported() -> None:
    """A deployment script uses emulator_process from here, on a machine without pytest."""
    probe = (
        "import sys\n"
        "sys.modules['pytest'] = None  # any `import pytest` now raises ImportError\n"
        "from airflow_provider_infinityblue.testing import emulator_process, running_emulator\n"
        "with running_emulator(generation_seconds=0.1) as in_thread, emulator_process() as in_process:\n"
        "    print(in_thread.stats()['submissions'], in_process.stats()['submissions'])\n"
        "try:\n"
        "    from airflow_provider_infinityblue.testing import infinityblue_emulator\n"
        "except ImportError as error:\n"
        "    print('fixtures need pytest:', error.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["0 0", "fixtures need pytest: pytest"]


def test_the_fixtures_can_still_be_imported_by_name() -> None:
    from airflow_provider_infinityblue import testing

    assert testing.infinityblue_emulator.__name__ == "infinityblue_emulator"
    with pytest.raises(AttributeError, match="no_such_fixture"):
        _ = testing.no_such_fixture
