"""The pytest fixtures of the ``infinityblue`` plugin; :mod:`airflow_provider_infinityblue.testing` loads them.

They live apart from the helpers they use, so that importing those helpers needs no pytest. Like the
plugin, this module imports neither aiohttp nor Airflow: the server is only imported when a fixture
starts one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_infinityblue.emulator.runners import EmulatorHandle, running_emulator

if TYPE_CHECKING:
    from collections.abc import Iterator

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
