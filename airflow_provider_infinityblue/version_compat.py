"""The few Airflow names whose home or existence depends on the Airflow version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

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


__all__ = ["ResumableJobMixin", "conf", "default_deferrable"]
