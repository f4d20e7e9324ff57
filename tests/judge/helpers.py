from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from conftest import NOW, good_facts

HERE = Path(__file__).parent
JUDGED_PACK = HERE / "packs" / "judged.yaml"
JUDGE_URL = "https://judge.test/v1"
COMPLETIONS = f"{JUDGE_URL}/chat/completions"
MODEL = "judge-model-1"
TRACKING = "1Z999AA10123456784"
LOST_TEXT = f"UPS confirmed parcel {TRACKING} lost in transit on Nov 20; refunding goods."


class FakeMonotonic:
    """A monotonic clock that only moves when the judge sleeps or a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def lost_facts(**overrides: Any) -> dict[str, Any]:
    """Facts under which the carrier-lost exception's preconditions hold."""
    facts = good_facts(
        **{
            "shipment.status": "lost",
            "order.delivered_at": None,
            "shipment.status_at": (NOW - timedelta(days=6)).isoformat(),
            "customer.orders": 7,
            "case.summary": "My shoes never arrived.",
            # Not declared by the pack: it must never reach the judge.
            "customer.email": "ann@example.com",
        }
    )
    facts.update(overrides)
    return facts


def delivered_facts(**overrides: Any) -> dict[str, Any]:
    """Facts of an order delivered five days ago: a refund is inside standard policy."""
    facts = lost_facts(
        **{
            "shipment.status": "delivered",
            "order.delivered_at": (NOW - timedelta(days=5)).isoformat(),
        }
    )
    facts.update(overrides)
    return facts


def lost_refund(
    amount: str = "15.00",
    *,
    role: str = "ai_agent",
    actor: str = "bot-1",
    key: str = "k-lost",
    text: str = LOST_TEXT,
    claims: list[dict[str, Any]] | None = None,
    reason: str = "carrier-lost",
) -> dict[str, Any]:
    return {
        "actor": {"id": actor, "role": role, "is_ai": role == "ai_agent"},
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "amount": amount,
                "currency": "USD",
                "customer_id": "c-1",
                "case_id": "case-1",
                "order_id": "o-1",
            },
        },
        "rationale": {
            "reason": reason,
            "text": text,
            "claims": claims
            if claims is not None
            else [{"field": "shipment.status", "value": "lost"}],
        },
        "idempotency_key": key,
    }


def verdict(
    justified: bool = True,
    *,
    clause: str = "carrier-lost",
    unsupported: list[str] | None = None,
    reason: str = "The facts show the carrier confirmed the parcel lost.",
) -> dict[str, Any]:
    return {
        "justified": justified,
        "clause": clause,
        "unsupported_claims": unsupported or [],
        "reason": reason,
    }


def completion(
    content: dict[str, Any] | str | None,
    *,
    refusal: str | None = None,
    finish_reason: str = "stop",
    prompt_tokens: int = 412,
    completion_tokens: int = 38,
) -> dict[str, Any]:
    """A Chat Completions response body."""
    text = json.dumps(content) if isinstance(content, dict) else content
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1764158400,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": refusal},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def sent(request: httpx.Request) -> dict[str, Any]:
    """The JSON body the judge sent."""
    body: dict[str, Any] = json.loads(request.content)
    return body


def block(text: str, name: str) -> Any:
    """The JSON inside one delimited data block of a prompt message."""
    inner = text.split(f"<{name}>\n", 1)[1].split(f"\n</{name}>", 1)[0]
    return json.loads(inner)


def facts_sent(request: httpx.Request) -> dict[str, Any]:
    user = sent(request)["messages"][1]["content"]
    facts: dict[str, Any] = block(user, "facts")
    return facts
