"""A connection that isn't defined: the error says where Airflow looked, and where a script can't see."""

from __future__ import annotations

import asyncio

import pytest
from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook


def test_the_sync_read_names_the_variable_a_script_needs(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_INFINITYBLUE_STAGING", raising=False)
    with pytest.raises(AirflowNotFoundException) as raised:
        _ = InfinityBlueHook("infinityblue_staging").settings
    message = str(raised.value)
    assert "The connection 'infinityblue_staging' isn't defined" in message
    assert "Outside a task" in message
    assert "not the metadata database" in message
    assert "export AIRFLOW_CONN_INFINITYBLUE_STAGING=" in message
    assert isinstance(raised.value.__cause__, AirflowNotFoundException)


def test_the_async_read_says_the_same(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_INFINITYBLUE_STAGING", raising=False)

    async def read() -> None:
        async with InfinityBlueHook("infinityblue_staging") as hook:
            await hook.asettings()

    with pytest.raises(AirflowNotFoundException, match="export AIRFLOW_CONN_INFINITYBLUE_STAGING="):
        asyncio.run(read())
