from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api.helpers import Served
from approvals.helpers import MutableFacts
from conftest import good_facts
from discretion import Guard, SqlStore
from discretion.api import Tokens, create_app


@pytest.fixture
def served(make_guard: Callable[..., Guard], store: SqlStore) -> Iterator[Served]:
    """The app on the shop pack, with a bearer token for every subject in `api.helpers`."""
    facts = MutableFacts(good_facts())
    guard = make_guard(context=facts)
    with TestClient(create_app(guard)) as client:
        server = Served(guard=guard, store=store, facts=facts, client=client)
        server.issue(Tokens(store, clock=guard.now))
        yield server
