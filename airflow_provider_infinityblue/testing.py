"""pytest fixtures and helpers for testing DAGs against the local InfinityBlue emulator.

Installed as a pytest plugin (entry point ``pytest11``), so every test suite in an
environment with this provider can ask for the fixtures by name::

    def test_my_dag_generates_a_video(infinityblue_connection):
        # AIRFLOW_CONN_INFINITYBLUE_DEFAULT now points at an emulator on 127.0.0.1.
        dag.test()
        assert infinityblue_connection.stats()["submissions"] == 1

``infinityblue_tls_emulator`` is the same emulator serving HTTPS, for tests of CA and proxy
settings: trust its ``.ca_bundle`` (the throwaway CA that signed its certificate)::

    def test_the_hook_trusts_the_emulator_ca(infinityblue_tls_emulator, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", infinityblue_tls_emulator.airflow_connection())
        ...

The helpers (:func:`running_emulator`, :func:`emulator_process`, :class:`EmulatorHandle`) need no
pytest: a deployment script can import them from here where pytest is not installed. The fixtures
are defined in :mod:`airflow_provider_infinityblue.emulator.pytest_fixtures`, which pytest loads
through ``pytest_plugins`` below; importing a fixture by name from here imports pytest.

pytest imports this module in every run, so it imports neither aiohttp nor Airflow:
the emulator's server is only imported when a fixture starts one.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_infinityblue.emulator.runners import (
    DEFAULT_FAKE_API_KEY,
    EmulatorHandle,
    emulator_process,
    running_emulator,
)

# pytest registers the fixtures of the modules named here when it loads this plugin.
pytest_plugins = ("airflow_provider_infinityblue.emulator.pytest_fixtures",)

_FIXTURES = frozenset({"infinityblue_connection", "infinityblue_emulator", "infinityblue_tls_emulator"})

# The fixtures are not listed: pytest finds them by name, and a star import must not need pytest.
__all__ = ["DEFAULT_FAKE_API_KEY", "EmulatorHandle", "emulator_process", "running_emulator"]


def __getattr__(name: str) -> Any:
    # The fixtures are imported only when asked for by name, since they need pytest.
    if name in _FIXTURES:
        from airflow_provider_infinityblue.emulator import pytest_fixtures

        return getattr(pytest_fixtures, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
