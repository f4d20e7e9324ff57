"""An agent that calls discretion over HTTP, run offline against the acme pack.

    python examples/http_agent.py

The app is served in-process (FastAPI's test client: no port, no network). The agent proposes
three refunds with `POST /v1/decisions`: the one inside policy it runs itself; the one the pack
routes waits until a tier2 supervisor approves it over the API for less, and then the agent
lists it under `/v1/executions`, claims it (a second claim is refused), runs it with its key and
reports the result; the one on a fraud hold never runs.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from discretion import Guard, SqlStore, load_pack
from discretion.api import Tokens, create_app
from discretion.context import SqliteCaseStore

ACME = Path(__file__).resolve().parent / "acme"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # the acme cases describe this moment
REFUNDS: list[str] = []


def issue_refund(key: str, amount: str, currency: str, order_id: str, **_: Any) -> str:
    """The agent's own payment call; `key` is for the payment API to deduplicate on."""
    REFUNDS.append(f"{currency} {amount} on {order_id}")
    return f"Refunded {currency} {amount} on order {order_id}."


def proposal(case: str, customer: str, order: str, amount: str) -> dict[str, Any]:
    return {
        "actor": {"id": "acme-assist", "role": "ai_agent", "is_ai": True},
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "amount": amount,
                "currency": "USD",
                "customer_id": customer,
                "case_id": case,
                "order_id": order,
            },
        },
        "rationale": {"text": "the customer asked for a refund"},
        "idempotency_key": f"{case}:refund",
    }


def main() -> int:
    guard = Guard(
        load_pack(ACME / "pack"),
        store=SqlStore("sqlite://"),
        context=SqliteCaseStore.from_sql(ACME / "cases.sql"),
        clock=lambda: NOW,
    )
    tokens = Tokens(guard.store, clock=guard.now)
    agent_token, _ = tokens.create(subject_id="acme-assist", role="ai_agent", is_ai=True)
    supervisor_token, _ = tokens.create(subject_id="dana.reyes", role="tier2")
    with TestClient(create_app(guard)) as agent, TestClient(create_app(guard)) as supervisor:
        agent.headers["Authorization"] = f"Bearer {agent_token}"
        supervisor.headers["Authorization"] = f"Bearer {supervisor_token}"
        cases = [
            ("K-70003", "C-1003", "A-50003", "64.99"),
            ("K-70007", "C-1007", "A-50007", "649.00"),
            ("K-70031", "C-1031", "A-50031", "199.00"),
        ]
        for case, customer, order, amount in cases:
            body = proposal(case, customer, order, amount)
            decision = agent.post("/v1/decisions", json=body).json()
            if decision["outcome"].startswith("allow"):
                ran = issue_refund(f"acme-assist:{case}:refund", **body["tool"]["arguments"])
                print(f"{case}: allowed, the agent ran it: {ran}")
            elif decision["outcome"] == "route":
                print(f"{case}: routed to a {decision['required_role']}, the agent waits")
                supervisor.post(
                    f"/v1/approvals/{decision['id']}/approve",
                    json={"note": "leak on video", "amount": "500.00"},
                )
            else:
                print(f"{case}: denied: {decision['explanation']}")

        for call in agent.get("/v1/executions").json()["executions"]:
            key = call["key"]
            claimed = agent.post(f"/v1/executions/{key}/claim")
            again = agent.post(f"/v1/executions/{key}/claim")
            print(f"{key}: claimed ({claimed.status_code}); a second claim: {again.status_code}")
            result = issue_refund(key, **call["arguments"])
            done = agent.post(f"/v1/executions/{key}/result", json={"result": result}).json()
            print(f"{key}: approved and reported once: {done['status']}: {done['result']}")
        print(f"Queued calls left: {len(agent.get('/v1/executions').json()['executions'])}")
    print(f"Money moved {len(REFUNDS)} times: {'; '.join(REFUNDS)}")
    print(f"Ledger verified: {guard.store.verify()} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
