from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient

# The approvals tests' pack with precedent settings, as a fixture for the API tests too.
from approvals.conftest import precedent_pack  # noqa: F401
from approvals.helpers import MutableFacts
from conftest import good_facts
from discretion import Guard, SqlStore
from discretion.api import Tokens, create_app
from discretion.policy import PolicyPack

from .helpers import Served


@pytest.fixture
def serve(make_guard: Callable[..., Guard], store: SqlStore) -> Iterator[Callable[..., Served]]:
    """Serves a guard on a pack (the shop pack by default) with tokens for every subject."""
    with ExitStack() as stack:

        def make(policy: PolicyPack | None = None) -> Served:
            facts = MutableFacts(good_facts())
            guard = make_guard(context=facts, policy=policy)
            client = stack.enter_context(TestClient(create_app(guard)))
            server = Served(guard=guard, store=store, facts=facts, client=client)
            server.issue(Tokens(store, clock=guard.now))
            return server

        yield make


@pytest.fixture
def served(serve: Callable[..., Served]) -> Served:
    return serve()
