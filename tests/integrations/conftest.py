from __future__ import annotations

import pytest


@pytest.fixture
def guard(make_guard):
    return make_guard()
