from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import good_facts, shop_pack_with
from discretion import Guard
from discretion.policy import PolicyPack

from .helpers import CARRIER_LOST, WITH_PRECEDENT, MutableFacts


@pytest.fixture
def facts() -> MutableFacts:
    return MutableFacts(good_facts())


@pytest.fixture
def guard(make_guard: Callable[..., Guard], facts: MutableFacts) -> Guard:
    return make_guard(context=facts)


@pytest.fixture
def precedent_pack(tmp_path: Path) -> PolicyPack:
    return shop_pack_with(tmp_path, CARRIER_LOST, WITH_PRECEDENT)
