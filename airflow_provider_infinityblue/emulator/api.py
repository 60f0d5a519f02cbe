"""The routes of the InfinityBlue API itself, plus the video files that finished generations point to.

Checks run in the order a real deployment applies them: the proxy in front may fail a
status request before anything else; then the rate limit, the API key, the body size,
and last the body itself.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from airflow_provider_infinityblue.emulator import errors, shapes
from airflow_provider_infinityblue.emulator.keys import EMULATOR_STATE
from airflow_provider_infinityblue.emulator.lifecycle import COMPLETED
from airflow_provider_infinityblue.emulator.ratelimit import retry_after_header
from airflow_provider_infinityblue.emulator.validation import InvalidGenerationRequest, validate_generation_request

if TYPE_CHECKING:
    from airflow_provider_infinityblue.emulator.settings import EmulatorSettings
    from airflow_provider_infinityblue.emulator.state import EmulatorState

GENERATIONS_ROUTE = "/v1/video/generations"
GENERATION_ROUTE = "/v1/video/generations/{task_id}"
VIDEO_ROUTE = "/videos/{task_id}.mp4"
_READ_CHUNK_BYTES = 64 * 1024


def add_api_routes(app: web.Application) -> None:
    app.router.add_post(GENERATIONS_ROUTE, create_generation)
    app.router.add_get(GENERATION_ROUTE, get_generation)
    app.router.add_get(VIDEO_ROUTE, get_video)


async def create_generation(request: web.Request) -> web.StreamResponse:
    state = request.app[EMULATOR_STATE]
    refusal = _refuse_api_request(request, state)
    if refusal is not None:
        return refusal
    if state.take_rejected_submission():
        return errors.rate_limited("Too many video generations submitted; retry after 1 s.", retry_after_header(1))
    limit = state.settings.max_body_bytes
    body = await _read_body(request, limit)
    if body is None:
        return errors.api_error(
            413,
            f"The request body is larger than the {state.settings.max_body_mb:g} MB limit. "
            "Send a smaller image, or an image URL instead of its data.",
            code="request_too_large",
        )
    try:
        payload = json.loads(body, parse_constant=_refuse_json_constant)
    except ValueError:
        return errors.api_error(
            400,
            "The request body is not valid JSON. Send a JSON object with 'Content-Type: application/json'.",
            code="invalid_json",
        )
    try:
        accepted = validate_generation_request(payload)
    except InvalidGenerationRequest as invalid:
        return errors.api_error(400, invalid.message, code=invalid.code, param=invalid.param)
    generation = state.submit(accepted)
    if state.settings.submission_answer_seconds:
        await asyncio.sleep(state.settings.submission_answer_seconds)
    return web.json_response(shapes.submission_body(generation, state.settings.shape))


async def get_generation(request: web.Request) -> web.StreamResponse:
    state = request.app[EMULATOR_STATE]
    if state.take_unavailable_poll():
        return errors.proxy_unavailable()
    refusal = _refuse_api_request(request, state)
    if refusal is not None:
        return refusal
    task_id = request.match_info["task_id"]
    generation = state.generations.get(task_id)
    shape = state.settings.shape
    if generation is None or state.take_invisible_poll():
        if shape == "wrapped":
            return web.json_response(shapes.TASK_NOT_EXIST, status=400)
        return errors.api_error(404, f"No video generation found with id '{task_id}'.", code="not_found")
    progress = generation.progress(state.clock())
    video_url = f"{request.scheme}://{request.host}/videos/{quote(generation.id, safe='')}.mp4"
    # Worked out for finished generations only: status polls of the rest are the emulator's busiest route.
    metadata = state.served_video_shape(generation).metadata() if progress.status == COMPLETED else None
    return web.json_response(shapes.status_body(generation, progress, shape, video_url, metadata))


async def get_video(request: web.Request) -> web.StreamResponse:
    """The finished video, as a download URL from a CDN would serve it: no API key, ranges supported."""
    state = request.app[EMULATOR_STATE]
    task_id = request.match_info["task_id"]
    generation = state.generations.get(task_id)
    if generation is None or generation.progress(state.clock()).status != COMPLETED:
        return errors.api_error(
            404, f"No finished video for generation '{task_id}': it is unknown or not completed.", code="not_found"
        )
    return web.FileResponse(await state.video_file(generation), headers={"Content-Type": "video/mp4"})


def _refuse_api_request(request: web.Request, state: EmulatorState) -> web.Response | None:
    """The 429 or 401 answer this API request gets, or None when it may go on."""
    wait = state.wait_for_rate_limit()
    if wait > 0:
        limit = state.settings.rate_limit
        return errors.rate_limited(
            f"Rate limit reached: {limit:g} requests per second. Retry after {retry_after_header(wait)} s.",
            retry_after_header(wait),
        )
    return _refuse_credentials(request.headers.get("Authorization", ""), state.settings)


def _refuse_credentials(authorization: str, settings: EmulatorSettings) -> web.Response | None:
    # Messages never repeat the key that was sent: it would end up in client logs.
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return errors.api_error(
            401,
            "You didn't provide an API key. Send it in the header 'Authorization: Bearer sk-...'.",
            code="missing_api_key",
        )
    if settings.api_key is not None:
        if not hmac.compare_digest(token.encode(), settings.api_key.encode()):
            return errors.api_error(401, "Incorrect API key provided.", code="invalid_api_key")
    elif not token.startswith("sk-") or len(token) == len("sk-"):
        return errors.api_error(401, "Incorrect API key provided: API keys start with 'sk-'.", code="invalid_api_key")
    return None


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it proves larger than ``limit`` (declared or streamed)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(_READ_CHUNK_BYTES):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _refuse_json_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
