"""A local emulator of the InfinityBlue video generation API, for tests that must not reach the real one.

Run it with ``infinityblue-emulator --port 8089`` (or ``python -m airflow_provider_infinityblue.emulator``),
or from Python::

    from airflow_provider_infinityblue.emulator import running_emulator

    with running_emulator(generation_seconds=0.5) as emulator:
        print(emulator.url, emulator.airflow_connection())

It answers ``POST /v1/video/generations`` and ``GET /v1/video/generations/{task_id}`` as
the API documents them, serves a real MP4 at each finished generation's ``url`` (rendered at
the length, size and frame rate the request asked for, within caps: :mod:`.videos`), and
has knobs for failures, rate limits, flaky proxies and the gateway's wrapped answer
shape (see :class:`EmulatorSettings`). With ``--tls`` (``tls=True``) it serves HTTPS
with a certificate from a throwaway CA (:mod:`airflow_provider_infinityblue.emulator.tls`).
Importing this package does not import aiohttp;
:mod:`airflow_provider_infinityblue.emulator.app` holds the aiohttp application.
"""

from __future__ import annotations

from airflow_provider_infinityblue.emulator.runners import (
    DEFAULT_FAKE_API_KEY,
    EmulatorControlError,
    EmulatorHandle,
    emulator_process,
    running_emulator,
)
from airflow_provider_infinityblue.emulator.settings import EmulatorSettings, InvalidSettingError

__all__ = [
    "DEFAULT_FAKE_API_KEY",
    "EmulatorControlError",
    "EmulatorHandle",
    "EmulatorSettings",
    "InvalidSettingError",
    "emulator_process",
    "running_emulator",
]
