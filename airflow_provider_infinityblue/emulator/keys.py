"""Typed keys for what the emulator keeps on its aiohttp app and requests."""

from __future__ import annotations

from aiohttp import web

from airflow_provider_infinityblue.emulator.state import EmulatorState

EMULATOR_STATE = web.AppKey("emulator_state", EmulatorState)
# Request-scoped values, set by the app's middleware.
REQUEST_ID = "infinityblue_emulator_request_id"
STARTED_AT = "infinityblue_emulator_started_at"
