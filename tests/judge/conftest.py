from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from tenacity import wait_fixed

from discretion import load_pack
from discretion.judge import OpenAIJudge
from discretion.policy import PolicyPack

from .helpers import JUDGE_URL, JUDGED_PACK, MODEL, FakeMonotonic


@pytest.fixture
def pack() -> PolicyPack:
    """The root conftest's guards use this pack in the judge tests."""
    return load_pack(JUDGED_PACK)


@pytest.fixture(autouse=True)
def judge_http() -> Iterator[respx.MockRouter]:
    """Every HTTP call in these tests must hit a route a test planned; others fail."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def monotonic() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def make_judge(monotonic: FakeMonotonic) -> Iterator[Callable[..., OpenAIJudge]]:
    clients: list[httpx.Client] = []

    def make(**kwargs: Any) -> OpenAIJudge:
        client = httpx.Client()
        clients.append(client)
        kwargs.setdefault("base_url", JUDGE_URL)
        kwargs.setdefault("api_key", "sk-test")
        kwargs.setdefault("wait", wait_fixed(2))
        kwargs.setdefault("timeout_s", 5.0)
        kwargs.setdefault("total_timeout_s", 10.0)
        kwargs.setdefault("environ", {})
        return OpenAIJudge(
            kwargs.pop("model", MODEL),
            http_client=client,
            sleep=monotonic.sleep,
            monotonic=monotonic,
            **kwargs,
        )

    yield make
    for client in clients:
        client.close()
