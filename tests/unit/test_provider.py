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
    assert set(behaviour["hidden-fields"]) == {"schema", "login"}
    assert behaviour["relabeling"]["password"] == "API Key"
    assert behaviour["placeholders"]["host"] == "https://api.getinfinityblue.com"
    assert set(connection["conn-fields"]) >= {
        "default_model",
        "connect_timeout",
        "read_timeout",
        "max_attempts",
        "max_image_mb",
    }


def test_every_connection_extra_is_optional() -> None:
    """A schema default would be filled into the UI form and saved into every connection; a type without
    null makes the field required. The default is named in the description instead."""
    for name, spec in get_provider_info()["connection-types"][0]["conn-fields"].items():
        schema = spec["schema"]
        assert "default" not in schema, name
        assert "null" in schema["type"], name
        assert "Empty: " in spec["description"], name


def test_providers_manager_registers_the_hook() -> None:
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


def test_airflow_providers_list_shows_the_package() -> None:
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow), "providers", "list", "--output", "json"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    # Airflow 3.0 logs to stdout before the JSON: read the one line that is the JSON list.
    (listing,) = [line for line in result.stdout.splitlines() if line.startswith("[{")]
    listed = {entry["package_name"] for entry in json.loads(listing)}
    assert "airflow-provider-infinityblue" in listed


UI_CONNECTION_FORM = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
(form,) = [meta for meta in HookMetaService.hook_meta_data() if meta.connection_type == "infinityblue"]
print(json.dumps(form.model_dump(mode="json")))
"""


def test_the_ui_connection_form_is_ours() -> None:
    """What the API server sends the UI for the connection form: Airflow 3.2+ builds it from the provider info's
    `conn-fields` and `ui-field-behaviour`; 3.0 and 3.1 from the hook's WTForms fields. Both give one form.

    Asked in a fresh interpreter, as the API server would: in this one, other tests have already
    initialised the providers manager's hooks."""
    result = subprocess.run([sys.executable, "-c", UI_CONNECTION_FORM], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    form = json.loads(result.stdout.strip().splitlines()[-1])
    standard = form["standard_fields"]
    assert standard["password"]["title"] == "API Key"
    assert standard["host"]["title"] == "Base URL"
    assert standard["host"]["placeholder"] == "https://api.getinfinityblue.com"
    assert all(standard[name]["hidden"] for name in ("login", "url_schema"))
    # Shown: Airflow 3.3's row Test icon refuses a connection without a stored port (README: the connection).
    assert not standard["port"]["hidden"]
    assert standard["port"]["title"] == "Port (optional)"
    declared = get_provider_info()["connection-types"][0]["conn-fields"]
    assert set(form["extra_fields"]) == set(declared)
    for name, spec in declared.items():
        field = form["extra_fields"][name]
        assert field["schema"]["title"] == spec["label"]
        assert spec["description"] in field["description"]
        # Nothing filled in, nothing required: an empty field saves no value.
        assert field["value"] is None, name
        assert "null" in field["schema"]["type"], name
    assert "integer" in form["extra_fields"]["max_attempts"]["schema"]["type"]


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("airflow_provider_infinityblue", ["airflow", "requests", "aiohttp"]),
        ("airflow_provider_infinityblue.hooks.infinityblue", ["aiohttp", "requests"]),
        ("airflow_provider_infinityblue.transport", ["aiohttp", "requests", "urllib3", "asyncio"]),
    ],
)
def test_imports_stay_light(module: str, forbidden: list[str]) -> None:
    code = f"import sys, {module}; print([m for m in {forbidden!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_ships_py_typed() -> None:
    assert (Path(airflow_provider_infinityblue.__file__).parent / "py.typed").is_file()
