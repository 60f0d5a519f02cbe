"""``infinityblue-emulator`` / ``python -m airflow_provider_infinityblue.emulator``: the command line.

Only ``main`` imports aiohttp, so building or reading the command line stays cheap.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING

from airflow_provider_infinityblue.emulator.settings import SHAPES, VIDEO_SOURCES, EmulatorSettings, InvalidSettingError

if TYPE_CHECKING:
    from collections.abc import Sequence

API_KEY_ENVIRONMENT_VARIABLE = "INFINITYBLUE_EMULATOR_API_KEY"
_DEFAULTS = EmulatorSettings()
# Settings whose flag is not their name with dashes: one flag per name, repeated.
_FLAG_OF_SETTING = {"tls_names": "--tls-name"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infinityblue-emulator",
        description="A local emulator of the InfinityBlue video generation API, for offline tests.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default=_DEFAULTS.host, help="address to listen on")
    parser.add_argument("--port", type=int, default=_DEFAULTS.port, help="port to listen on (0: any free port)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENVIRONMENT_VARIABLE),
        help=f"the only API key accepted (default: ${API_KEY_ENVIRONMENT_VARIABLE}; unset: any sk- key)",
    )
    parser.add_argument(
        "--generation-seconds", type=float, default=_DEFAULTS.generation_seconds, help="time a generation takes"
    )
    parser.add_argument(
        "--generation-seconds-max",
        type=float,
        default=None,
        help="if set, each generation takes a uniformly random time between --generation-seconds and this",
    )
    parser.add_argument(
        "--failure-rate", type=float, default=_DEFAULTS.failure_rate, help="share of generations that fail (0..1)"
    )
    parser.add_argument(
        "--fail-marker",
        default=_DEFAULTS.fail_marker,
        help="a prompt containing this fails with content_policy_violation ('' turns it off)",
    )
    parser.add_argument(
        "--rate-limit", type=float, default=None, help="API requests per second before answering 429 (unset: no limit)"
    )
    parser.add_argument(
        "--error-rate",
        type=float,
        default=_DEFAULTS.error_rate,
        help="share of status requests answered 503 with an HTML page, like a failing proxy (0..1)",
    )
    parser.add_argument("--shape", choices=SHAPES, default=_DEFAULTS.shape, help="answer shape")
    parser.add_argument(
        "--video",
        choices=VIDEO_SOURCES,
        default=_DEFAULTS.video,
        help="rendered: each video has the length, size and frame rate asked for (capped at 10 s, 1280x720, "
        "30 fps; needs ffmpeg, else the sample); sample: always the 3 s 320x180 sample file",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed all randomness, for reproducible runs")
    parser.add_argument(
        "--max-body-mb", type=float, default=_DEFAULTS.max_body_mb, help="largest request body accepted (413 above)"
    )
    parser.add_argument(
        "--reject-submissions", type=int, default=0, help="answer the next N submissions 429 (Retry-After: 1)"
    )
    parser.add_argument("--unavailable-polls", type=int, default=0, help="answer the next N status requests 503")
    parser.add_argument(
        "--invisible-polls",
        type=int,
        default=0,
        help="answer the next N status requests of an existing generation 404, as a lagging replica would",
    )
    parser.add_argument(
        "--submission-answer-seconds",
        type=float,
        default=0.0,
        help="answer each submission this long after creating its generation",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS, with a certificate signed by a throwaway CA made at startup; "
        "prints the path of the CA certificate for clients to trust",
    )
    parser.add_argument(
        "--tls-name",
        dest="tls_names",
        metavar="NAME",
        action="append",
        # SUPPRESS: an unset flag leaves the setting at its default and the help free of "(default: None)".
        default=argparse.SUPPRESS,
        help="with --tls: another DNS name or IP address for the certificate, besides localhost, "
        "127.0.0.1 and ::1 (repeatable)",
    )
    parser.add_argument(
        "--tls-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="with --tls: where to write ca.pem, server.pem and server-key.pem, replacing any there "
        "(default: a new temporary directory, kept after exit so that clients can still read the CA)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="one INFO line per request"
    )
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> tuple[EmulatorSettings, str]:
    """The settings and log level a command line asks for; exits with a usage error if they are invalid."""
    parser = build_parser()
    options = vars(parser.parse_args(argv))
    log_level = options.pop("log_level")
    try:
        return EmulatorSettings(**options), log_level
    except InvalidSettingError as invalid:
        flag = _FLAG_OF_SETTING.get(invalid.name, f"--{invalid.name.replace('_', '-')}")
        parser.error(f"{flag}: {invalid.problem}")


def command_line_arguments(settings: EmulatorSettings) -> list[str]:
    """The flags that make the command line start an emulator with ``settings``, except the API key.

    The key is left out so that it never shows in a process list: pass it in
    ``$INFINITYBLUE_EMULATOR_API_KEY`` instead.

    >>> command_line_arguments(EmulatorSettings(port=9000, shape="wrapped", rate_limit=5))[:4]
    ['--host', '127.0.0.1', '--port', '9000']
    >>> parse_settings(command_line_arguments(EmulatorSettings(seed=3, fail_marker="")))[0].seed
    3
    """
    arguments = [
        "--host", settings.host,
        "--port", str(settings.port),
        "--generation-seconds", repr(settings.generation_seconds),
        "--failure-rate", repr(settings.failure_rate),
        f"--fail-marker={settings.fail_marker}",
        "--error-rate", repr(settings.error_rate),
        "--shape", settings.shape,
        "--video", settings.video,
        "--max-body-mb", repr(settings.max_body_mb),
        "--reject-submissions", str(settings.reject_submissions),
        "--unavailable-polls", str(settings.unavailable_polls),
        "--invisible-polls", str(settings.invisible_polls),
        "--submission-answer-seconds", repr(settings.submission_answer_seconds),
    ]  # fmt: skip
    if settings.generation_seconds_max is not None:
        arguments += ["--generation-seconds-max", repr(settings.generation_seconds_max)]
    if settings.rate_limit is not None:
        arguments += ["--rate-limit", repr(settings.rate_limit)]
    if settings.seed is not None:
        arguments += ["--seed", str(settings.seed)]
    if settings.tls:
        arguments.append("--tls")
    for name in settings.tls_names:
        arguments += ["--tls-name", name]
    if settings.tls_dir is not None:
        arguments += ["--tls-dir", str(settings.tls_dir)]
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    settings, log_level = parse_settings(argv)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from airflow_provider_infinityblue.emulator.app import CannotListenError, serve

    try:
        # The CA's path also goes to stdout, whatever the log level, since clients cannot connect without it.
        asyncio.run(serve(settings, announce=lambda line: print(line, flush=True)))
    except CannotListenError as cannot_listen:
        print(f"infinityblue-emulator: {cannot_listen}", file=sys.stderr)
        return 1
    return 0
