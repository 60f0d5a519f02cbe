"""Keeps every test run away from the developer's own Airflow home and database."""

from __future__ import annotations

import os
import tempfile

# Set before anything imports Airflow (doctests import the hook module too).
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="infinityblue-airflow-home-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
