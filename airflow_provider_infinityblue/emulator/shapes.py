"""The JSON bodies of the API's answers, in the documented shape or in the gateway's wrapped one.

``documented`` is what the API reference shows: ``{"task_id", "status", "progress", "url", ...}``
with ``queued``/``in_progress``/``completed``/``failed`` and an ``error`` object.
``wrapped`` is how OpenAI-compatible gateways are known to answer: the same facts inside
``{"code": "success", "message": "", "data": {...}}``, with ``id``, upper-case status
words, ``result_url``, progress as a ``"40%"`` string and a ``fail_reason`` string.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_infinityblue.emulator.lifecycle import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    EmulatedGeneration,
    Progress,
)

WRAPPED_STATUS = {QUEUED: "NOT_START", IN_PROGRESS: "IN_PROGRESS", COMPLETED: "SUCCESS", FAILED: "FAILURE"}
VIDEO_FORMAT = "mp4"
TASK_NOT_EXIST = {"code": "task_not_exist", "message": "task not exist", "data": None}


def submission_body(generation: EmulatedGeneration, shape: str) -> dict[str, Any]:
    """The answer to a successful ``POST /v1/video/generations``.

    >>> from airflow_provider_infinityblue.emulator.lifecycle import EmulatedGeneration
    >>> generation = EmulatedGeneration("abc", "veo_3_1", submitted_at=0.0, created_at=1700000000, duration=2.0)
    >>> submission_body(generation, "documented")
    {'task_id': 'abc', 'status': 'queued'}
    >>> submission_body(generation, "wrapped")
    {'code': 'success', 'message': '', 'data': {'id': 'abc', 'status': 'NOT_START'}}
    """
    if shape == "wrapped":
        return _wrap({"id": generation.id, "status": WRAPPED_STATUS[QUEUED]})
    return {"task_id": generation.id, "status": QUEUED}


def status_body(
    generation: EmulatedGeneration,
    progress: Progress,
    shape: str,
    video_url: str,
    video_metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """The answer to ``GET /v1/video/generations/{task_id}``; ``video_url`` and ``video_metadata`` once completed.

    ``video_metadata`` describes the file at ``video_url``; the wrapped shape has no place for it.
    """
    if shape == "wrapped":
        return _wrap(_wrapped_status(generation, progress, video_url))
    body: dict[str, Any] = {
        "task_id": generation.id,
        "status": progress.status,
        "progress": progress.percent,
        "model": generation.model,
        "created_at": generation.created_at,
    }
    if progress.status == COMPLETED:
        body.update(url=video_url, format=VIDEO_FORMAT, metadata=video_metadata or {})
    elif progress.status == FAILED and generation.failure is not None:
        body["error"] = {"code": generation.failure.code, "message": generation.failure.message}
    return body


def _wrapped_status(generation: EmulatedGeneration, progress: Progress, video_url: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": generation.id,
        "status": WRAPPED_STATUS[progress.status],
        "progress": f"{progress.percent}%",
        "model": generation.model,
        "submit_time": generation.created_at,
    }
    if progress.status == COMPLETED:
        data["result_url"] = video_url
    elif progress.status == FAILED and generation.failure is not None:
        data["fail_reason"] = generation.failure.message
    return data


def _wrap(data: dict[str, Any]) -> dict[str, Any]:
    return {"code": "success", "message": "", "data": data}
