from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from discretion import Guard, SqlStore, load_pack
from discretion.context import ContextRequest, StaticContextProvider
from discretion.policy import PolicyPack
from discretion.store._schema import metadata

# The test run derandomizes hypothesis so CI gates on the same examples every time;
# `HYPOTHESIS_PROFILE=explore` searches afresh (and keeps what it finds in .hypothesis/).
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

HERE = Path(__file__).parent
SHOP_PACK = HERE / "packs" / "shop.yaml"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POSTGRES_URL = os.environ.get("DISCRETION_TEST_POSTGRES_URL")


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class Counter:
    def __init__(self, prefix: str = "dec") -> None:
        self.prefix = prefix
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}_{self.n:06d}"


def good_facts(**overrides: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "customer.id": "c-1",
        "customer.tier": "gold",
        "customer.fraud_flag": False,
        "order.total": {"amount": "120.00", "currency": "USD"},
        "order.shipping": {"amount": "9.99", "currency": "USD"},
        "order.delivered_at": (NOW - timedelta(days=5)).isoformat(),
        "shipment.status": "delivered",
        "incident.active": False,
    }
    facts.update(overrides)
    return facts


class LoopFacts:
    """Good facts from memory; notes the thread each fetch runs on and how many overlap.

    `in_process`: what it tells the guard (False: as if its facts came across the network).
    """

    def __init__(self, *, in_process: bool = True) -> None:
        self.in_process = in_process
        self.threads: list[int] = []
        self.inside = 0
        self.most_inside = 0

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        self.threads.append(threading.get_ident())
        self.inside -= 1
        return good_facts()


class ShopFacts(StaticContextProvider):
    """Fixed facts, with every customer a proposal names on file as itself.

    The shop pack checks customers (`entities`): a test naming `c-2` means a customer the shop
    knows, not one the agent made up.
    """

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        facts = dict(super().fetch(request))
        if request.customer_id is not None:
            facts["customer.id"] = request.customer_id
        return facts


def refund(
    amount: str = "40.00",
    *,
    role: str = "ai_agent",
    actor: str = "bot-1",
    key: str | None = "k-1",
    reason: str | None = None,
    customer: str = "c-1",
    case: str = "case-1",
    currency: str = "USD",
    **extra: Any,
) -> dict[str, Any]:
    proposal: dict[str, Any] = {
        "actor": {"id": actor, "role": role, "is_ai": role == "ai_agent"},
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "amount": amount,
                "currency": currency,
                "customer_id": customer,
                "case_id": case,
                "order_id": "o-1",
            },
        },
        "rationale": {"reason": reason, "text": "customer asked"},
    }
    if key is not None:
        proposal["idempotency_key"] = key
    proposal.update(extra)
    return proposal


def traced_sqlite(path: Path) -> tuple[SqlStore, list[str]]:
    """A SQLite store at `path` whose connections note every statement they run, in order."""
    from sqlalchemy import event

    store = SqlStore(f"sqlite:///{path}")
    statements: list[str] = []

    @event.listens_for(store.engine, "connect")
    def _trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    store.engine.dispose()  # connections from here on are traced
    return store, statements


def shop_pack_with(folder: Path, old: str, new: str) -> PolicyPack:
    """The test shop pack with one exact piece of its YAML replaced."""
    source = SHOP_PACK.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    path = folder / "shop-variant.yaml"
    path.write_text(source.replace(old, new), encoding="utf-8")
    return load_pack(path)


@pytest.fixture
def anyio_backend() -> str:
    """The async tests (`@pytest.mark.anyio`) run on asyncio, the loop the integrations use."""
    return "asyncio"


@pytest.fixture
def pack() -> PolicyPack:
    return load_pack(SHOP_PACK)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fresh_postgres() -> SqlStore:
    """An empty store on the test PostgreSQL database."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need DISCRETION_TEST_POSTGRES_URL (scripts/test.sh sets it)")
    s = SqlStore(POSTGRES_URL, create=False)
    metadata.drop_all(s.engine)
    s.create_schema()
    return s


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A fresh store per test, on SQLite and (when configured) on PostgreSQL."""
    if request.param == "sqlite":
        s = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    else:
        s = fresh_postgres()
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield s
    s.close()


@pytest.fixture
def make_guard(pack: PolicyPack, store: SqlStore, clock: FakeClock) -> Callable[..., Guard]:
    def make(
        facts: dict[str, Any] | None = None, *, policy: PolicyPack | None = None, **kwargs: Any
    ) -> Guard:
        kwargs.setdefault("store", store)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("ids", Counter())
        context = kwargs.pop("context", None) or ShopFacts(
            facts if facts is not None else good_facts()
        )
        return Guard(policy or pack, context=context, **kwargs)

    return make
