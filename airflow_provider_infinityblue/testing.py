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

pytest imports this module in every run, so it imports neither aiohttp nor Airflow:
the emulator's server is only imported when a fixture starts one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_infinityblue.emulator.runners import (
    DEFAULT_FAKE_API_KEY,
    EmulatorHandle,
    emulator_process,
    running_emulator,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DEFAULT_FAKE_API_KEY",
    "EmulatorHandle",
    "emulator_process",
    "infinityblue_connection",
    "infinityblue_emulator",
    "infinityblue_tls_emulator",
    "running_emulator",
]

FIXTURE_GENERATION_SECONDS = 0.5


@pytest.fixture
def infinityblue_emulator() -> Iterator[EmulatorHandle]:
    """An emulator in a thread on 127.0.0.1 whose generations take 0.5 s; stopped after the test."""
    with running_emulator(generation_seconds=FIXTURE_GENERATION_SECONDS) as emulator:
        yield emulator


@pytest.fixture
def infinityblue_tls_emulator() -> Iterator[EmulatorHandle]:
    """:func:`infinityblue_emulator` serving HTTPS on ``https://127.0.0.1:PORT``.

    Its certificate is signed by a CA made for it, at ``.ca_bundle``; its
    ``airflow_connection()`` names that CA as the ``ca_bundle`` extra. The certificate
    files are deleted after the test.

    Example::

        def test_verifies_the_certificate(infinityblue_tls_emulator):
            url = f"{infinityblue_tls_emulator.url}/_emulator/config"
            assert requests.get(url, verify=infinityblue_tls_emulator.ca_bundle).ok
    """
    with running_emulator(generation_seconds=FIXTURE_GENERATION_SECONDS, tls=True) as emulator:
        yield emulator


@pytest.fixture
def infinityblue_connection(infinityblue_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    """:func:`infinityblue_emulator`, with ``AIRFLOW_CONN_INFINITYBLUE_DEFAULT`` pointing at it for the test."""
    monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", infinityblue_emulator.airflow_connection())
    return infinityblue_emulator
