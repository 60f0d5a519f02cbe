from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.version_compat import AIRFLOW_V_3_1_PLUS, AIRFLOW_VERSION

# Obviously fake: long enough for Airflow's secrets masker, and easy to grep for.
FAKE_API_KEY = "sk-test-FAKE0000notarealkey0000"
BASE_URL = "http://infinityblue.test"


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "infinityblue_default", **fields) -> None:
    """Define an Airflow connection through its ``AIRFLOW_CONN_*`` environment variable (JSON form)."""
    fields.setdefault("conn_type", "infinityblue")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.fixture
def fast_extra() -> dict[str, float]:
    """Connection extras that keep retry waits short in tests."""
    return {"initial_backoff": 0.01, "max_backoff": 0.05, "max_attempts": 4}


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, fast_extra: dict[str, float]) -> InfinityBlueHook:
    set_connection(monkeypatch, host=BASE_URL, password=FAKE_API_KEY, extra=json.dumps(fast_extra))
    with InfinityBlueHook() as hook:
        yield hook


# Airflow 3.0's in-process supervisor (dag.test(), `airflow dags test`) logs at debug level every message a
# task sends it, and Airflow masks each connection's password by sending one: its own leak, for every
# provider's connection, gone in 3.1 (README: supported Airflow versions). Tests that scan logs for the key
# blank that one message on 3.0; the key anywhere else still fails them.
_AIRFLOW_30_MASK_MESSAGE = re.compile(r"MaskSecret\(value=(?:'[^']*'|\{[^}]*\})")


def without_airflow_30_mask_messages(logs: str) -> str:
    """``logs`` with Airflow 3.0's own debug line of each masked secret blanked; unchanged on 3.1+."""
    if AIRFLOW_V_3_1_PLUS:
        return logs
    return _AIRFLOW_30_MASK_MESSAGE.sub("MaskSecret(value='<blanked by the tests>'", logs)


def on_event_loop_thread() -> bool:
    """Whether the caller runs on a thread with a running asyncio event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# -- tests of one range of Airflow versions -----------------------------------------------------
# `@pytest.mark.airflow(">=3.3", feature="durable retries")` marks a test of behaviour that only that range
# of Airflow versions has: a feature a newer Airflow added, or what the provider does without it. A run on
# another Airflow does not collect it (it is deselected, and the summary says how many and why), and
# `make test-compat` runs every supported Airflow, so each such test runs where it applies.


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "airflow(spec, feature): only for the Airflow versions in `spec` (a PEP 440 specifier set)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    elsewhere: list[pytest.Item] = []
    reasons: Counter[str] = Counter()
    for item in items:
        marker = item.get_closest_marker("airflow")
        if marker is None or AIRFLOW_VERSION in SpecifierSet(marker.args[0]):
            kept.append(item)
        else:
            elsewhere.append(item)
            reasons[f"{marker.kwargs.get('feature', 'behaviour')} (Airflow {marker.args[0]})"] += 1
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = kept
        config.stash[_OTHER_AIRFLOW] = reasons


_OTHER_AIRFLOW = pytest.StashKey[Counter[str]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    terminalreporter.write_sep("-", f"Airflow {AIRFLOW_VERSION}")
    reasons = config.stash.get(_OTHER_AIRFLOW, Counter())
    if not reasons:
        terminalreporter.write_line("every collected test applies to this Airflow")
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"not collected here, tested on other Airflow versions: {count} x {reason}")


@pytest.fixture(autouse=True)
def _fresh_connection_reads() -> None:
    """Each test reads its connections anew: coroutines of one process share a read for a few seconds."""
    from airflow_provider_infinityblue.session_pool import forget_connection_reads

    forget_connection_reads()
