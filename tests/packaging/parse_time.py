"""What a DAG file's parse imports from the provider, and what it must not pay for: shared by
``tests/packaging/test_import_cost.py`` (the check) and ``bench/import_cost.py`` (the measure)."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_provider_infinityblue import get_provider_info

REPO = Path(__file__).parents[2]
PARSE_TIME_MODULES = [
    module
    for kind in ("hooks", "operators", "sensors", "triggers")
    for entry in get_provider_info()[kind]
    for module in entry["python-modules"]
]
"""The modules Airflow's providers manager knows the hook, operators, sensor and triggers by."""
HTTP_CLIENTS = [
    "aiohttp",
    "aiohappyeyeballs",
    "aiosignal",
    "frozenlist",
    "multidict",
    "propcache",
    "yarl",
    "requests",
    "urllib3",
    "charset_normalizer",
]
"""HTTP clients and their dependencies. Not idna or certifi: airflow.sdk loads those itself, for httpx."""


def child_environment(pycache: str | Path, **variables: str) -> dict[str, str]:
    """The environment of an interpreter that imports the provider as a deployment would.

    With compiled bytecode: in a private cache (``PYTHONPYCACHEPREFIX``), since this machine may set
    ``PYTHONDONTWRITEBYTECODE``, and every import would then compile from source.
    """
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    environment.update(
        PYTHONPYCACHEPREFIX=str(pycache),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **variables,
    )
    return environment
