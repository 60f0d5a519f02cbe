"""Error answers: the API's OpenAI-style JSON, and the HTML page a failing proxy sends instead."""

from __future__ import annotations

from aiohttp import web

INVALID_REQUEST = "invalid_request_error"

PROXY_UNAVAILABLE_PAGE = """<html>
<head><title>503 Service Temporarily Unavailable</title></head>
<body>
<center><h1>503 Service Temporarily Unavailable</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


def api_error(
    status: int,
    message: str,
    *,
    code: str | None,
    param: str | None = None,
    error_type: str = INVALID_REQUEST,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """``{"error": {"message", "type", "code", "param"}}`` with ``status``."""
    body = {"error": {"message": message, "type": error_type, "code": code, "param": param}}
    return web.json_response(body, status=status, headers=headers)


def rate_limited(message: str, retry_after: str) -> web.Response:
    return api_error(
        429,
        message,
        code="rate_limit_exceeded",
        error_type="rate_limit_error",
        headers={"Retry-After": retry_after},
    )


def proxy_unavailable() -> web.Response:
    return web.Response(status=503, text=PROXY_UNAVAILABLE_PAGE, content_type="text/html")


def from_http_exception(exc: web.HTTPException, request: web.Request) -> web.Response:
    """aiohttp's own refusals (no such route, wrong method) in the API's JSON form."""
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    if exc.status == 404:
        message, code = f"No such route: {request.method} {request.path}", "not_found"
    elif exc.status == 405:
        message, code = f"{request.method} is not allowed on {request.path}", "method_not_allowed"
    else:
        message, code = exc.reason, None
    error_type = INVALID_REQUEST if exc.status < 500 else "server_error"
    return api_error(exc.status, message, code=code, error_type=error_type, headers=headers)
