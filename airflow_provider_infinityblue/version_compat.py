"""The few Airflow names whose home or existence depends on the Airflow version.

The provider supports Airflow 3.0.6 and later (the floor in ``pyproject.toml``). What a newer
Airflow adds is used where that Airflow has it (detected, not guessed from the version number),
and the README's support table says what each version gets:

- 3.1 added the async connection lookup (``BaseHook.aget_connection``); on 3.0 the hook's
  coroutines read the connection through asgiref's ``sync_to_async`` instead.
- 3.2 reads the connection form from the provider info (``conn-fields``); on 3.0 and 3.1 the
  hook describes it with WTForms fields.
- 3.3 added the task state store (``ResumableJobMixin``): durable retries. Before it, a stand-in
  submits anew on every try and says so once in the task log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow import __version__ as _airflow_version
from airflow.providers.common.compat.sdk import conf
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(_airflow_version).base_version)
"""The running Airflow's release, without pre-release or local parts (``3.1.0rc1`` counts as 3.1.0)."""
AIRFLOW_V_3_1_PLUS = Version("3.1.0") <= AIRFLOW_VERSION

if TYPE_CHECKING:
    from airflow.sdk import ResumableJobMixin
else:
    try:
        from airflow.sdk import ResumableJobMixin
    except ImportError:  # Airflow < 3.3: no task state store, so no durable retries.

        class ResumableJobMixin:
            """Stand-in for Airflow 3.3's mixin: submits and waits, without surviving retries."""

            external_id_key = "remote_job_id"

            def __init__(self, *, durable: bool = True, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.durable = durable

            def execute_resumable(self, context: Any) -> Any:
                if self.durable:
                    self.log.warning(
                        "This Airflow has no task state store (it needs 3.3+): a retry of this task "
                        "will submit a new job instead of re-attaching to this one."
                    )
                external_id = self.submit_job(context)
                self.poll_until_complete(external_id, context)
                return self.get_job_result(external_id, context)


def default_deferrable() -> bool:
    """``[operators] default_deferrable``: what ``deferrable`` defaults to."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_1_PLUS",
    "ResumableJobMixin",
    "conf",
    "default_deferrable",
]
