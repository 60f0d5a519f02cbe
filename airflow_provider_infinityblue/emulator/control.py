"""The ``/_emulator/*`` routes that tests use to watch and steer the emulator.

They need no API key, are never rate limited or failed on purpose, and are left out
of the request counts, so that watching the emulator does not change what it shows.
The connection counts are kept below HTTP, where a request's route is not known yet:
the connection a control request comes on is counted like any other.
"""

from __future__ import annotations

import json

from aiohttp import web

from airflow_provider_infinityblue.emulator import errors
from airflow_provider_infinityblue.emulator.keys import EMULATOR_STATE
from airflow_provider_infinityblue.emulator.settings import InvalidSettingError

CONTROL_PREFIX = "/_emulator"


def add_control_routes(app: web.Application) -> None:
    app.router.add_get(f"{CONTROL_PREFIX}/stats", get_stats)
    app.router.add_get(f"{CONTROL_PREFIX}/generations", get_generations)
    app.router.add_post(f"{CONTROL_PREFIX}/reset", reset)
    app.router.add_get(f"{CONTROL_PREFIX}/config", get_config)
    app.router.add_post(f"{CONTROL_PREFIX}/config", configure)


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR_STATE].stats())


async def get_generations(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR_STATE].submitted_generations())


async def reset(request: web.Request) -> web.Response:
    state = request.app[EMULATOR_STATE]
    state.reset()
    return web.json_response(state.stats())


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR_STATE].settings.knobs())


async def configure(request: web.Request) -> web.Response:
    """Change knobs from a JSON object of knob names to values; all or nothing."""
    state = request.app[EMULATOR_STATE]
    try:
        knobs = json.loads(await request.read())
    except ValueError:
        return errors.api_error(400, "The body must be a JSON object of knob names to values.", code="invalid_json")
    if not isinstance(knobs, dict):
        return errors.api_error(400, "The body must be a JSON object of knob names to values.", code="invalid_type")
    try:
        settings = state.configure(knobs)
    except InvalidSettingError as invalid:
        return errors.api_error(400, str(invalid), code="invalid_knob", param=invalid.name)
    return web.json_response(settings.knobs())
