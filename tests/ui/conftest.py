"""Fixtures for the UI tier: a real Airflow with this provider, the emulator, and Debian's Chromium.

One Airflow (API server, scheduler, DAG processor, triggerer; SQLite) and one emulator serve the whole
module: starting Airflow takes most of the tier's time. Every test opens its own browser page and leaves
screenshots of the pages it checked under ``.airflow-test/ui/`` for a person to look at (``failed-*.png``:
the page a failing test ended on).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_infinityblue.testing import emulator_process
from deploy.deployment import LocalDeployment

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page

    from airflow_provider_infinityblue.testing import EmulatorHandle

REPO = Path(__file__).parents[2]
SCREENSHOTS = REPO / ".airflow-test" / "ui"
# Debian's `chromium` package; Playwright's own browser download cannot reach its CDN here.
CHROMIUM = Path(os.environ.get("INFINITYBLUE_UI_CHROMIUM", "/usr/lib/chromium/chromium"))
CHROMIUM_ARGUMENTS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EMULATOR_API_KEY = "sk-ui-tier-0000notarealkey0000"
# The example DAGs read it for their poll interval: short, to keep the tier fast.
POLL_SECONDS = 1


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    """The InfinityBlue API for Airflow's processes and the connection tests: a key-checking subprocess."""
    with emulator_process(generation_seconds=1, api_key=EMULATOR_API_KEY) as handle:
        yield handle


@pytest.fixture(scope="module")
def airflow(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    """Airflow with the provider and the example DAGs, Connection Test enabled and every visitor an admin.

    ``infinityblue_default`` (what the example DAGs use) comes from the environment, pointing at the
    emulator; the tests add their own connections through the UI under other ids.
    """
    deployment = LocalDeployment(
        home=tmp_path_factory.mktemp("airflow-ui"),
        dag_folders={"examples": REPO / "example_dags"},
        database="sqlite",
        environment={
            "AIRFLOW_CONN_INFINITYBLUE_DEFAULT": emulator.airflow_connection(),
            "INFINITYBLUE_EXAMPLE_POLL_SECONDS": str(POLL_SECONDS),
            # What the README tells users to set for the Test button.
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            # The browser needs no login page.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        },
        # Only the runs a test triggers: no scheduled run appears when the UI unpauses a DAG.
        config={"scheduler": {"use_job_schedule": False}},
    )
    with deployment:
        yield deployment


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright, headless, with a fresh profile.

    A missing Chromium fails the tier (CI installs it): a skipped UI tier would pass while proving nothing.
    """
    if not CHROMIUM.is_file():
        found = shutil.which("chromium")
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}{f' (there is one at {found})' if found else ''}: "
            "run `apt-get install chromium` (Debian), or point INFINITYBLUE_UI_CHROMIUM at its binary"
        )
    from playwright.sync_api import sync_playwright

    arguments = [*CHROMIUM_ARGUMENTS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=arguments)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, airflow: LocalDeployment) -> Iterator[Page]:
    """A page in a browser context of its own, on the Airflow UI."""
    context = browser.new_context(base_url=airflow.base_url, viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """On a failure: a screenshot of the page as it was, and the end of every Airflow component's log."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        page = funcargs.get("page")
        if page is not None and not page.is_closed():
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SCREENSHOTS / f"failed-{item.name}.png", full_page=True)
            report.sections.append(("UI page", f"{page.url}, screenshot in {SCREENSHOTS}/failed-{item.name}.png"))
        airflow = funcargs.get("airflow")
        if isinstance(airflow, LocalDeployment):
            report.sections.append((f"Airflow logs (home {airflow.home})", airflow.log_tails(lines=40)))
    return report
