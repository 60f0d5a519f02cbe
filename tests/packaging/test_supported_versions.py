"""The supported Airflow and Python versions: declared once, refused below, and the same everywhere they are named.

The floors live in pyproject.toml; `make test-compat` (scripts/compat_matrix.py) proves each supported Airflow
minor; the Makefile's AIRFLOW_VERSION is the newest, which `make test` runs; the README's support table lists
what the matrix proves. Installs below a floor must fail in the resolver, as a user would see it: these tests
ask uv and pip to resolve against the package index, without installing anything.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from scripts.compat_matrix import MATRIX

REPO = Path(__file__).parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
UV = Path(sys.executable).parent / "uv"


def declared_floor(name: str) -> Version:
    (requirement,) = [Requirement(r) for r in PYPROJECT["project"]["dependencies"] if Requirement(r).name == name]
    (bound,) = [spec for spec in requirement.specifier if spec.operator == ">="]
    return Version(bound.version)


AIRFLOW_FLOOR = declared_floor("apache-airflow")


def resolve_with_uv(tmp_path: Path, *, airflow: str, python: str = "3.11") -> subprocess.CompletedProcess[str]:
    """Resolve the provider with Airflow pinned by a constraints file, as Airflow's install docs have users do."""
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"apache-airflow=={airflow}\n")
    command = [str(UV), "pip", "compile", "--no-header", "--python-version", python, "-c", str(constraints), "-"]
    return subprocess.run(
        command, input=f"airflow-provider-infinityblue @ {REPO.as_uri()}\n", capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("below", ["3.0.5", "2.11.2"])
def test_uv_refuses_an_airflow_below_the_floor(tmp_path: Path, below: str) -> None:
    result = resolve_with_uv(tmp_path, airflow=below)
    assert result.returncode != 0
    message = " ".join(result.stderr.split())  # uv wraps its explanation
    assert "No solution found" in message
    assert f"airflow-provider-infinityblue==0.1.0 depends on apache-airflow>={AIRFLOW_FLOOR}" in message


def test_pip_refuses_an_airflow_below_the_floor(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("apache-airflow==3.0.5\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-c", str(constraints), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "ResolutionImpossible" in result.stderr
    assert (
        f"airflow-provider-infinityblue 0.1.0 depends on apache-airflow>={AIRFLOW_FLOOR}"
        in result.stdout + result.stderr
    )


def test_the_floor_itself_resolves(tmp_path: Path) -> None:
    result = resolve_with_uv(tmp_path, airflow=str(AIRFLOW_FLOOR))
    assert result.returncode == 0, result.stderr
    assert f"apache-airflow=={AIRFLOW_FLOOR}" in result.stdout.splitlines()


def test_a_python_below_the_floor_is_refused(tmp_path: Path) -> None:
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    result = resolve_with_uv(tmp_path, airflow=str(AIRFLOW_FLOOR), python="3.10")
    assert result.returncode != 0
    assert "Python>=3.11" in " ".join(result.stderr.split())


def test_the_matrix_starts_at_the_declared_floor_and_ends_at_what_make_test_runs() -> None:
    assert Version(MATRIX[0].version) == AIRFLOW_FLOOR
    (newest,) = re.findall(r"^AIRFLOW_VERSION \?= (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert MATRIX[-1].version == newest
    assert MATRIX[-1].world_as_of is None  # the newest resolves like `make test`
    minors = [Version(release.version).release[:2] for release in MATRIX]
    assert minors == sorted(set(minors)), "one release per minor, oldest first"
    assert minors == [(3, minor) for minor in range(minors[0][1], minors[-1][1] + 1)], "no minor left out"


def test_the_readme_support_table_lists_exactly_the_matrix() -> None:
    readme = (REPO / "README.md").read_text()
    header = next(line for line in readme.splitlines() if line.startswith("| Feature |"))
    assert re.findall(r"Airflow (\d+\.\d+\.\d+)", header) == [release.version for release in MATRIX]
    assert f"apache-airflow>={AIRFLOW_FLOOR}" in readme
