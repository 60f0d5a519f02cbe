"""Keeps every test run away from the developer's own Airflow home and database."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).parent
# Folders whose DAGs the tests run with dag.test(): linked into one DAGs folder, since
# Airflow reads the folder once, when its configuration loads.
DAG_FOLDERS = {"e2e": REPO / "tests" / "integration" / "dags", "examples": REPO / "example_dags"}

# Set before anything imports Airflow (doctests import the hook module too).
_home = Path(tempfile.mkdtemp(prefix="infinityblue-airflow-home-"))
_dags = _home / "dags"
_dags.mkdir()
for name, folder in DAG_FOLDERS.items():
    if folder.is_dir():
        (_dags / name).symlink_to(folder, target_is_directory=True)
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_dags)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
