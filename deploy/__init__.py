"""Start a real Airflow deployment on loopback, one process per component, for tests and demos.

``LocalDeployment`` and ``CeleryDeployment`` are context managers (on a throwaway ``PostgresCluster``
by default); ``python -m deploy`` runs one against the local InfinityBlue emulator until Ctrl-C.
"""

from __future__ import annotations

from deploy.api import AirflowApi, AirflowApiError
from deploy.deployment import AirflowDeployment, CeleryDeployment, LocalDeployment
from deploy.postgres import PostgresCluster
from deploy.processes import DeploymentError, ManagedProcess

__all__ = [
    "AirflowApi",
    "AirflowApiError",
    "AirflowDeployment",
    "CeleryDeployment",
    "DeploymentError",
    "LocalDeployment",
    "ManagedProcess",
    "PostgresCluster",
]
