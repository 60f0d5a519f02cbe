"""One INFO line per request on the ``infinityblue.emulator`` logger, and never the API key."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_infinityblue.emulator import emulator_process, running_emulator
from tests.emulator.conftest import ApiClient

if TYPE_CHECKING:
    import pytest

SECRET_KEY = "sk-SECRET-do-not-log-7f3a9c"
LINE = re.compile(r"^(GET|POST|HEAD) (/\S*) (\d{3}) \d+\.\dms (req_[0-9a-f]+)$")


def test_each_request_logs_one_info_line_with_method_path_status_time_and_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="infinityblue.emulator")
    with running_emulator(generation_seconds=0.1) as emulator:
        api = ApiClient(emulator.url, api_key=SECRET_KEY)
        caplog.clear()
        answers = [api.submit(), api.submit(width="x"), api.status("missing"), api.session.get(emulator.url + "/zz")]
    lines = [
        record for record in caplog.records if record.name == "infinityblue.emulator" and LINE.match(record.message)
    ]
    assert all(record.levelno == logging.INFO for record in lines)
    parsed = [LINE.match(record.message).groups() for record in lines]  # type: ignore[union-attr]
    assert parsed == [
        ("POST", "/v1/video/generations", "200", answers[0].headers["x-request-id"]),
        ("POST", "/v1/video/generations", "400", answers[1].headers["x-request-id"]),
        ("GET", "/v1/video/generations/missing", "404", answers[2].headers["x-request-id"]),
        ("GET", "/zz", "404", answers[3].headers["x-request-id"]),
    ]


def test_the_api_key_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with running_emulator(generation_seconds=0.1, api_key=SECRET_KEY) as emulator:
        right = ApiClient(emulator.url, api_key=SECRET_KEY)
        wrong = ApiClient(emulator.url, api_key=SECRET_KEY + "-wrong")
        task_id = right.submit_id()
        right.wait_until_finished(task_id)
        wrong.submit()
        wrong.status(task_id)
        right.session.get(f"{emulator.url}/v1/video/generations/{task_id}?api_key={SECRET_KEY}", timeout=10)
    # The test's own HTTP client (urllib3) logs the URL it calls; only the server side is checked.
    server_side = [record for record in caplog.records if record.name.split(".")[0] in ("infinityblue", "aiohttp")]
    assert len(server_side) >= 6, "the emulator logged less than one line per request"
    assert all("SECRET" not in record.getMessage() + repr(record.__dict__) for record in server_side)


def test_a_process_emulator_keeps_the_key_out_of_its_log_and_its_command_line() -> None:
    with emulator_process(generation_seconds=0.1, api_key=SECRET_KEY) as emulator:
        api = ApiClient(emulator.url, api_key=SECRET_KEY)
        api.wait_until_finished(api.submit_id())
        ApiClient(emulator.url, api_key="sk-SECRET-wrong").submit()
        command_line = Path(f"/proc/{emulator.pid}/cmdline").read_bytes().decode()
        assert emulator.log_path is not None
        log = emulator.log_path.read_text()
    assert "POST /v1/video/generations 200" in log
    assert "POST /v1/video/generations 401" in log
    assert "SECRET" not in log
    assert "airflow_provider_infinityblue.emulator" in command_line
    assert "SECRET" not in command_line
