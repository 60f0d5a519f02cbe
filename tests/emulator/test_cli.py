"""The command line: every flag, its checks, ``python -m`` and the ``infinityblue-emulator`` script."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import requests

from airflow_provider_infinityblue.emulator import EmulatorSettings
from airflow_provider_infinityblue.emulator.cli import command_line_arguments, parse_settings

ALL_FLAGS = [
    "--host", "0.0.0.0",
    "--port", "9123",
    "--api-key", "sk-cli-key",
    "--generation-seconds", "1.5",
    "--generation-seconds-max", "4",
    "--failure-rate", "0.2",
    "--fail-marker", "[nope]",
    "--rate-limit", "50",
    "--error-rate", "0.05",
    "--shape", "wrapped",
    "--video", "sample",
    "--seed", "42",
    "--max-body-mb", "8",
    "--reject-submissions", "2",
    "--unavailable-polls", "3",
    "--invisible-polls", "2",
    "--submission-answer-seconds", "1.5",
    "--log-level", "WARNING",
]  # fmt: skip


def test_every_flag_parses_into_the_settings() -> None:
    settings, log_level = parse_settings(ALL_FLAGS)
    assert settings == EmulatorSettings(
        host="0.0.0.0",
        port=9123,
        api_key="sk-cli-key",
        generation_seconds=1.5,
        generation_seconds_max=4.0,
        failure_rate=0.2,
        fail_marker="[nope]",
        rate_limit=50.0,
        error_rate=0.05,
        shape="wrapped",
        video="sample",
        seed=42,
        max_body_mb=8.0,
        reject_submissions=2,
        unavailable_polls=3,
        invisible_polls=2,
        submission_answer_seconds=1.5,
    )
    assert settings.api_key == "sk-cli-key"
    assert log_level == "WARNING"


def test_no_flags_give_the_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFINITYBLUE_EMULATOR_API_KEY", raising=False)
    settings, log_level = parse_settings([])
    assert settings == EmulatorSettings()
    assert (settings.port, settings.generation_seconds, settings.max_body_mb, settings.fail_marker) == (
        8089,
        2.0,
        32.0,
        "[content-policy]",
    )
    assert log_level == "INFO"


def test_the_api_key_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINITYBLUE_EMULATOR_API_KEY", "sk-from-env")
    assert parse_settings([])[0].api_key == "sk-from-env"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--failure-rate", "1.5"], "--failure-rate: must be a fraction"),
        (["--error-rate", "-1"], "--error-rate: must be at least 0"),
        (["--shape", "xml"], "invalid choice"),
        (["--video", "4k"], "invalid choice"),
        (["--rate-limit", "0"], "--rate-limit: must be greater than 0"),
        (["--generation-seconds", "3", "--generation-seconds-max", "1"], "--generation-seconds-max"),
        (["--port", "http"], "invalid int value"),
        (["--reject-submissions", "-2"], "--reject-submissions: must be at least 0"),
    ],
)
def test_invalid_flags_exit_with_a_usage_error(flags, message, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(flags)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_settings_survive_a_round_trip_through_the_command_line() -> None:
    settings = EmulatorSettings(
        port=9000,
        generation_seconds=0.25,
        generation_seconds_max=0.75,
        failure_rate=0.1,
        fail_marker="-- nope --",
        rate_limit=12.5,
        error_rate=0.3,
        shape="wrapped",
        video="sample",
        seed=7,
        max_body_mb=1.5,
        reject_submissions=1,
        unavailable_polls=4,
        invisible_polls=5,
        submission_answer_seconds=0.25,
    )
    assert parse_settings(command_line_arguments(settings))[0] == settings


def test_the_console_script_is_installed() -> None:
    scripts = {entry.name: entry.value for entry in entry_points(group="console_scripts")}
    assert scripts["infinityblue-emulator"] == "airflow_provider_infinityblue.emulator.cli:main"
    assert (Path(sys.executable).parent / "infinityblue-emulator").exists()


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "airflow_provider_infinityblue.emulator"],
        [str(Path(sys.executable).parent / "infinityblue-emulator")],
    ],
)
def test_help_lists_every_flag(command: list[str]) -> None:
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for flag in ALL_FLAGS[::2]:
        assert flag in result.stdout


def test_the_console_script_serves_on_the_port_it_reports(tmp_path: Path) -> None:
    log_path = tmp_path / "emulator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "infinityblue-emulator"), "--host", "127.0.0.1", "--port", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = _wait_for_listening_url(log_path)
        answer = requests.get(f"{url}/_emulator/config", timeout=10)
        assert answer.status_code == 200
        assert answer.json()["shape"] == "documented"
    finally:
        process.terminate()
        assert process.wait(10) == 0
    assert "InfinityBlue emulator stopping" in log_path.read_text()


def _wait_for_listening_url(log_path: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log_path.read_text())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"the emulator never said where it listens: {log_path.read_text()}")


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "airflow_provider_infinityblue.emulator"],
        [str(Path(sys.executable).parent / "infinityblue-emulator")],
    ],
)
def test_a_busy_port_is_one_line_naming_it_and_what_to_do(command: list[str]) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        result = subprocess.run(
            [*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"infinityblue-emulator: port {port} on 127.0.0.1 is already in use")
    assert "--port" in line
    assert "Traceback" not in line
