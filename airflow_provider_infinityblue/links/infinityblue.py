"""The "InfinityBlue video" button on a task in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import XCom
from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

VIDEO_URL_XCOM_KEY = "video_url"
GENERATION_ID_XCOM_KEY = "infinityblue_task_id"


class InfinityBlueVideoLink(BaseOperatorLink):
    """Opens the generated video; empty until there is one.

    Airflow asks for the link on the worker when a task attempt ends (deferrals included)
    and stores it for the UI. The operator that just ran knows its ``video_url`` (None
    while deferred), so no XCom lookup is made there; any other caller reads the task's
    ``video_url`` XCom.

    Example::

        class MyOperator(BaseOperator):
            operator_extra_links = (InfinityBlueVideoLink(),)
    """

    name = "InfinityBlue video"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if hasattr(operator, VIDEO_URL_XCOM_KEY):
            url = getattr(operator, VIDEO_URL_XCOM_KEY)
        else:
            url = XCom.get_value(ti_key=ti_key, key=VIDEO_URL_XCOM_KEY)
        return url if isinstance(url, str) and url.startswith(("http://", "https://")) else ""
