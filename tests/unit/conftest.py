from __future__ import annotations

import pytest
from aioresponses import aioresponses


@pytest.fixture
def api():
    """aiohttp answers scripted per URL, for the hook's coroutines and the trigger."""
    with aioresponses() as mocked:
        yield mocked
