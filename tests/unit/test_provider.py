"""The package as Airflow sees it: registration, connection type, light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_infinityblue
from airflow_provider_infinityblue import get_provider_info


def test_provider_info_is_valid_against_airflows_schema() -> None:
    import jsonschema

    schema_path = Path(__import__("airflow").__file__).parent / "provider_info.schema.json"
    jsonschema.validate(get_provider_info(), json.loads(schema_path.read_text()))


def test_provider_info_describes_the_connection() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-infinityblue"
    assert info["versions"] == [airflow_provider_infinityblue.__version__]
    (connection,) = info["connection-types"]
    assert connection["connection-type"] == "infinityblue"
    assert connection["hook-class-name"] == "airflow_provider_infinityblue.hooks.infinityblue.InfinityBlueHook"
    behaviour = connection["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "login", "port"}
    assert behaviour["relabeling"]["password"] == "API Key"
    assert behaviour["placeholders"]["host"] == "https://api.getinfinityblue.com"
    assert set(connection["conn-fields"]) >= {"connect_timeout", "read_timeout", "max_attempts", "max_image_mb"}


def test_providers_manager_registers_the_hook_and_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-infinityblue" in manager.providers
    try:  # Airflow 3.2+: hooks are resolved by the task runtime's manager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hooks = ProvidersManagerTaskRuntime().hooks
    except ImportError:
        hooks = manager.hooks
    hook_info = hooks["infinityblue"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_provider_infinityblue.hooks.infinityblue.InfinityBlueHook"
    assert hook_info.connection_id_attribute_name == "infinityblue_conn_id"
    assert hook_info.hook_name == "InfinityBlue"
    behaviour = manager.field_behaviours["infinityblue"]
    assert behaviour["relabeling"]["password"] == "API Key"
    assert "extra__infinityblue__max_attempts" in manager.connection_form_widgets


def test_airflow_providers_list_shows_the_package() -> None:
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow), "providers", "list", "--output", "json"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    listed = {entry["package_name"] for entry in json.loads(result.stdout[result.stdout.index("[") :])}
    assert "airflow-provider-infinityblue" in listed


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("airflow_provider_infinityblue", ["airflow", "requests", "aiohttp"]),
        ("airflow_provider_infinityblue.hooks.infinityblue", ["aiohttp", "requests"]),
    ],
)
def test_imports_stay_light(module: str, forbidden: list[str]) -> None:
    code = f"import sys, {module}; print([m for m in {forbidden!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_ships_py_typed() -> None:
    assert (Path(airflow_provider_infinityblue.__file__).parent / "py.typed").is_file()
