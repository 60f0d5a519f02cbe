"""The provider as a person sees it in Airflow's UI: the connection form, its Test button, a DAG run.

Driven in Chromium against a real Airflow (see conftest.py); what the UI saved is read back through
Airflow's REST API, not from the page.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

import pytest

from airflow_provider_infinityblue import get_provider_info
from tests.ui.conftest import EMULATOR_API_KEY, SCREENSHOTS

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from airflow_provider_infinityblue.testing import EmulatorHandle
    from deploy.deployment import LocalDeployment

# The first test also waits for Airflow to start (about a minute; longer on a busy machine).
pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]

CONN_FIELDS = get_provider_info()["connection-types"][0]["conn-fields"]
DAG_ID = "example_infinityblue_text_to_video"
RUN_TIMEOUT_SECONDS = 150


def keep_screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def open_new_infinityblue_form(page: Page) -> Locator:
    """Admin → Connections → Add Connection, type InfinityBlue: the dialog."""
    page.goto("/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").fill("InfinityBlue")
    page.keyboard.press("Enter")
    dialog.get_by_label("Base URL").wait_for()
    return dialog


def add_connection(page: Page, conn_id: str, *, base_url: str, api_key: str, port: int | None) -> Locator:
    """Fill the form's standard fields and open its extra fields; the caller saves."""
    dialog = open_new_infinityblue_form(page)
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_label("Base URL").fill(base_url)
    dialog.get_by_label("API Key").fill(api_key)
    if port is not None:
        dialog.get_by_label("Port (optional)").fill(str(port))
    dialog.get_by_text("Extra Fields", exact=True).click()
    return dialog


def extra_field(dialog: Locator, name: str) -> Locator:
    """An extra's input, by its name: Airflow 3.3's text inputs are not tied to their labels."""
    return dialog.locator(f"[name='element_{name}']")


def save(page: Page, dialog: Locator, conn_id: str) -> None:
    save_button = dialog.get_by_role("button", name="Save")
    assert save_button.is_enabled()
    save_button.click()
    page.get_by_role("row").filter(has_text=conn_id).wait_for()


def click_test_button(page: Page, conn_id: str) -> str:
    """Click the connection's Test icon in the list (where saving leaves the page); the toast's text."""
    row = page.get_by_role("row").filter(has_text=conn_id)
    row.get_by_role("button", name="Test Connection").click()
    toast = page.get_by_role("status").filter(has_text="Test Connection")
    toast.wait_for()
    return toast.inner_text()


def emulator_port(emulator: EmulatorHandle) -> int:
    port = urlsplit(emulator.url).port
    assert port is not None
    return port


def test_the_connection_form_is_ours(page: Page) -> None:
    dialog = open_new_infinityblue_form(page)
    assert dialog.get_by_label("Base URL").get_attribute("placeholder") == "https://api.getinfinityblue.com"
    assert dialog.get_by_label("API Key").get_attribute("placeholder") == "sk-..."
    assert dialog.get_by_label("API Key").get_attribute("type") == "password"
    assert dialog.get_by_label("Port (optional)").is_visible()
    for hidden in ("Login", "Schema"):
        assert dialog.get_by_label(hidden, exact=True).count() == 0
    dialog.get_by_text("Extra Fields", exact=True).click()
    for name, spec in CONN_FIELDS.items():
        label = dialog.locator("label").filter(has_text=re.compile(rf"^{re.escape(spec['label'])}\s*\*?\s*$")).first
        # No red asterisk: every extra is optional, and none is filled in.
        assert "*" not in label.inner_text(), name
        field = extra_field(dialog, name)
        if field.get_attribute("type") not in ("checkbox", "hidden"):
            assert field.input_value() == "", name
    assert dialog.get_by_text("Empty: kling-v2-5-turbo").is_visible()
    keep_screenshot(page, "connection_form")


def test_a_cleared_extra_is_saved_empty(page: Page, airflow: LocalDeployment, emulator: EmulatorHandle) -> None:
    conn_id = "infinityblue_ui_saved"
    dialog = add_connection(page, conn_id, base_url=emulator.url, api_key=EMULATOR_API_KEY, port=None)
    connect_timeout = extra_field(dialog, "connect_timeout")
    connect_timeout.fill("5")
    connect_timeout.fill("")
    extra_field(dialog, "max_attempts").fill("3")
    extra_field(dialog, "default_model").fill("kling-v2-1")
    extra_field(dialog, "default_model").blur()
    assert dialog.get_by_text("This field is required").count() == 0
    keep_screenshot(page, "connection_form_filled")
    save(page, dialog, conn_id)

    saved = airflow.api.request("GET", f"/connections/{conn_id}")
    extra = json.loads(saved["extra"])
    # Airflow's form writes every field it shows: the empty ones as null, which the hook reads as "the default".
    assert {name: value for name, value in extra.items() if value is not None} == {
        "max_attempts": 3,
        "default_model": "kling-v2-1",
    }
    assert saved["host"] == emulator.url
    assert saved["port"] is None


def test_the_test_button_accepts_the_key(page: Page, emulator: EmulatorHandle) -> None:
    conn_id = "infinityblue_ui_good_key"
    port = emulator_port(emulator)
    dialog = add_connection(page, conn_id, base_url=emulator.url, api_key=EMULATOR_API_KEY, port=port)
    save(page, dialog, conn_id)
    message = click_test_button(page, conn_id)
    assert "Test Connection Successful" in message
    assert f"Connected to {emulator.url}: the API key was accepted." in message
    keep_screenshot(page, "connection_test_success")


def test_the_test_button_names_a_wrong_key(page: Page, emulator: EmulatorHandle) -> None:
    conn_id = "infinityblue_ui_wrong_key"
    port = emulator_port(emulator)
    dialog = add_connection(page, conn_id, base_url=emulator.url, api_key="sk-wrong-0000notarealkey0000", port=port)
    save(page, dialog, conn_id)
    message = click_test_button(page, conn_id)
    assert "Test Connection Failed" in message
    assert f"Invalid API key: {emulator.url} rejected it (HTTP 401" in message
    assert "sk-wrong" not in message
    keep_screenshot(page, "connection_test_failure")


def test_a_run_triggered_in_the_ui_links_its_video(
    page: Page, airflow: LocalDeployment, emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> None:
    output_dir = tmp_path_factory.mktemp("ui-videos")
    airflow.api.wait_for_dag(DAG_ID)
    page.goto(f"/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    assert dialog.get_by_label("Unpause").is_checked()
    dialog.locator("[name='element_output_dir']").fill(str(output_dir))
    keep_screenshot(page, "dag_trigger")
    dialog.get_by_role("button", name="Trigger").click()
    page.wait_for_url(re.compile(rf"/dags/{DAG_ID}/runs/.+"))
    run_id = unquote(page.url.rsplit("/runs/", 1)[1].split("/")[0])

    run = airflow.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT_SECONDS)
    assert run["state"] == "success"
    video_url = airflow.api.xcom(DAG_ID, run_id, "generate", key="video_url")
    assert video_url.startswith(f"{emulator.url}/videos/")
    assert list(output_dir.rglob("*.mp4"))
    page.reload()
    keep_screenshot(page, "dag_run")

    page.goto(f"/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/generate/details")
    link = page.get_by_role("link", name="InfinityBlue video")
    assert link.get_attribute("href") == video_url
    keep_screenshot(page, "task_extra_link")


def test_the_rest_call_in_the_readme_tests_the_stored_connection(
    airflow: LocalDeployment, emulator: EmulatorHandle
) -> None:
    """Only the id and type are sent: the API server tests the stored connection, whatever its port."""
    answer = airflow.api.request(
        "POST", "/connections/test", json={"connection_id": "infinityblue_default", "conn_type": "infinityblue"}
    )
    assert answer == {"status": True, "message": f"Connected to {emulator.url}: the API key was accepted."}


def test_the_cli_command_in_the_readme_tests_the_connection(airflow: LocalDeployment, emulator: EmulatorHandle) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "connections", "test", "infinityblue_default"],
        env=airflow.environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout


def test_the_test_icon_refuses_a_connection_saved_without_a_port(page: Page, emulator: EmulatorHandle) -> None:
    """What the README tells Airflow 3.3 users to avoid: the icon sends port 0 for no port, which differs."""
    conn_id = "infinityblue_ui_no_port"
    dialog = add_connection(page, conn_id, base_url=emulator.url, api_key=EMULATOR_API_KEY, port=None)
    save(page, dialog, conn_id)
    message = click_test_button(page, conn_id)
    assert "Test Connection Failed" in message
    assert "Bad Request" in message
    keep_screenshot(page, "connection_test_without_port")
