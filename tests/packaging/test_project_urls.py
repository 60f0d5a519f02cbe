"""The provider's page links: Airflow's Providers page links each provider to its "Documentation" URL."""

from __future__ import annotations

from importlib.metadata import metadata

import pytest

PACKAGE = "airflow-provider-infinityblue"


def project_urls() -> dict[str, str]:
    entries = metadata(PACKAGE).get_all("Project-URL") or []
    return {name.strip(): url.strip() for name, url in (entry.split(",", 1) for entry in entries)}


def test_the_package_names_its_documentation_and_repository() -> None:
    urls = project_urls()
    assert urls["Documentation"].endswith("/airflow-provider-infinityblue#readme")
    assert urls["Repository"] == urls["Documentation"].removesuffix("#readme")
    assert urls["Issues"] == urls["Repository"] + "/issues"


@pytest.mark.airflow(">=3.1", feature="the Providers page links to the package's Documentation URL")
def test_airflow_links_the_providers_page_to_the_readme() -> None:
    from airflow.providers_manager import ProvidersManager

    provider = ProvidersManager().providers[PACKAGE]
    assert provider.data["documentation-url"] == project_urls()["Documentation"]
