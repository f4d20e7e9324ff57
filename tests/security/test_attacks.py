"""Attacks from the outside security review, against the shipped acme pack and case data.

Each test states the behaviour wanted once the attack is fixed, through outcomes, errors and
HTTP answers that need no new API: it fails while the attack still works. Numbers in the
section headings are the review's attack classes. See `acme_attacks.py` for the case facts.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from langchain_core.tools import tool

import discretion
from _workers import split_acme_refund
from api.helpers import csrf_of, sign_in
from discretion import (
    CallNotAllowed,
    ConfigurationError,
    Decision,
    DiscretionError,
    Guard,
    LedgerIntegrityError,
    Outcome,
    ProposalError,
    SqlStore,
)
from discretion.api import Tokens, create_app

from .acme_attacks import (
    ACME_PACK,
    ALLOWED,
    BOT,
    OTHER_BOT,
    TOM,
    acme_guard,
    acme_pack_with,
    all_at_once,
    allowed_total,
    outcomes,
    refund,
)

AI_STANDARD_REFUND = Decimal("200.00")  # roles.yaml: ai_agent refund standard authority
CUSTOMER_EXCEPTIONS_30D = Decimal("500.00")  # budgets.yaml: budget.customer-exceptions-30d


def decide_or_refuse(guard: Guard, proposal: dict[str, Any]) -> Decision | DiscretionError:
    """The decision, or the discretion error that refused the proposal."""
    try:
        return guard.decide(proposal)
    except DiscretionError as exc:
        return exc


def described(result: Decision | DiscretionError) -> str:
    if isinstance(result, Decision):
        return f"decided {result.outcome.value} {result.rules} on {result.amount}"
    return f"{type(result).__name__}: {result}"


def run(store: SqlStore, *statements: Any) -> None:
    with store.engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)


def verify_fails(store: SqlStore) -> str | None:
    """The integrity error `verify()` raises; None when the ledger verifies."""
    try:
        store.verify()
    except LedgerIntegrityError as exc:
        return str(exc)
    return None


# 1. Split refunds ------------------------------------------------------------------------------


def test_a_refund_split_into_four_calls_stays_within_the_ai_standard_authority(store):
    guard = acme_guard(store)
    whole = guard.decide(
        refund(order="A-50007", customer="C-1007", case="K-70007", amount="649.00", key="whole")
    )
    assert whole.outcome is Outcome.ROUTE
    assert whole.required_role == "tier2"

    parts = [
        guard.decide(
            refund(order="A-50007", customer="C-1007", case="K-70007", amount="162.25", key=f"p{i}")
        )
        for i in range(4)
    ]

    assert allowed_total(parts) <= AI_STANDARD_REFUND, outcomes(parts)


SPLITS = pytest.mark.parametrize(
    ("order", "customer", "case", "part", "cap"),
    [
        ("A-50007", "C-1007", "K-70007", "162.25", AI_STANDARD_REFUND),
        ("A-50003", "C-1003", "K-70003", "30.00", Decimal("64.99")),  # what was paid
    ],
    ids=["over-ai-authority", "over-amount-paid"],
)


@SPLITS
def test_refunds_split_over_parallel_calls_stay_within_the_cap(
    store, order, customer, case, part, cap
):
    guard = acme_guard(store)
    calls = [
        lambda i=i: guard.decide(
            refund(order=order, customer=customer, case=case, amount=part, key=f"par-{i}")
        )
        for i in range(4)
    ]

    parts = all_at_once(calls)

    assert allowed_total(parts) <= cap, outcomes(parts)


@SPLITS
def test_refunds_split_across_two_processes_stay_within_the_cap(
    store, order, customer, case, part, cap
):
    # Two processes, as two servers (or two workers of one) on one database, each an agent
    # splitting the same refund: the totals are read and locked in each decision's transaction.
    url = store.engine.url.render_as_string(hide_password=False)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        runs = [
            pool.submit(split_acme_refund, url, worker, order, customer, case, part, 3)
            for worker in (1, 2)
        ]
        parts = [p for run in runs for p in run.result(timeout=120)]
    allowed = sum(
        Decimal(amount) for outcome, amount in parts if outcome in ("allow", "allow_exception")
    )
    assert len(parts) == 6
    assert allowed <= cap, parts
    assert store.verify() >= 6


def test_many_small_refunds_never_exceed_what_was_paid_for_the_order(store):
    guard = acme_guard(store)  # A-50003: 64.99 paid, nothing refunded yet
    parts = [
        guard.decide(
            refund(order="A-50003", customer="C-1003", case="K-70003", amount="10.00", key=f"s{i}")
        )
        for i in range(10)
    ]

    assert allowed_total(parts) <= Decimal("64.99"), outcomes(parts)


# 2. Spoofed customer ---------------------------------------------------------------------------


def test_the_fraud_hold_applies_when_the_owner_is_named(store):
    # The premise of the next test: naming the order's real owner is denied.
    decision = acme_guard(store).decide(
        refund(order="A-50031", customer="C-1031", case="K-70031", amount="199.00", key="own")
    )
    assert decision.outcome is Outcome.DENY
    assert "refund.fraud-hold" in decision.rules


@pytest.mark.parametrize("case", ["K-70031", "K-70003"], ids=["held-case", "clean-case"])
def test_a_refund_on_a_fraud_held_order_naming_a_clean_customer_is_never_allowed(store, case):
    result = decide_or_refuse(
        acme_guard(store),
        refund(order="A-50031", customer="C-1003", case=case, amount="199.00", key="spoof"),
    )

    assert not (isinstance(result, Decision) and result.outcome in ALLOWED), described(result)


def test_rotating_customer_ids_does_not_walk_around_the_customer_exception_budget(store):
    # tier2 may grant carrier-lost refunds up to 400; C-1018's lost TV (948.00 paid). Named
    # three times as C-1018 the second is routed to finance (500.00 budget per customer).
    guard = acme_guard(store)
    named = ["C-1018", "C-1001", "C-1002"]
    parts = [
        guard.decide(
            refund(
                order="A-50018",
                customer=customer,
                case="K-70018",
                amount="300.00",
                key=f"rot-{i}",
                actor=TOM,
                reason="refund.carrier-lost",
            )
        )
        for i, customer in enumerate(named)
    ]

    assert allowed_total(parts) <= CUSTOMER_EXCEPTIONS_30D, outcomes(parts)


def test_naming_a_platinum_customer_does_not_unlock_a_loyalty_save_on_anothers_order(store):
    guard = acme_guard(store)

    def loyalty(customer: str, key: str) -> Decision | DiscretionError:
        return decide_or_refuse(
            guard,
            refund(
                order="A-50025",  # C-1025's, a standard-tier customer
                customer=customer,
                case="K-70025",
                amount="89.00",
                key=key,
                actor=TOM,
                reason="refund.loyalty-save",
                claims=[{"field": "customer.tier", "value": "platinum"}],
            ),
        )

    owner = loyalty("C-1025", "owner")
    assert isinstance(owner, Decision)
    assert owner.outcome is Outcome.DENY

    spoofed = loyalty("C-1001", "platinum")

    assert not (isinstance(spoofed, Decision) and spoofed.outcome in ALLOWED), described(spoofed)


# 3. Ids smuggled as lists or objects -----------------------------------------------------------

SMUGGLED = {
    "order-list": {"order": ["A-50007"]},
    "order-object": {"order": {"id": "A-50007"}},
    "customer-list": {"customer": ["C-1031"]},
    "customer-object": {"customer": {"id": "C-1031"}},
    "case-list": {"case": ["K-70031"]},
    "case-object": {"case": {"id": "K-70031"}},
    "amount-list": {"amount": ["64.99"]},
    "amount-object": {"amount": {"amount": "64.99", "currency": "USD"}},
}


def smuggling(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "order": "A-50003",
        "customer": "C-1003",
        "case": "K-70003",
        "amount": "64.99",
    }
    return refund(**{**fields, **changes}, key="smuggled")


@pytest.mark.parametrize("changes", list(SMUGGLED.values()), ids=list(SMUGGLED))
def test_an_id_or_amount_smuggled_as_a_list_or_object_is_refused(store, changes):
    result = decide_or_refuse(acme_guard(store), smuggling(**changes))

    assert isinstance(result, ProposalError), described(result)
    assert store.count() == 0


@pytest.mark.parametrize(
    "order",
    [["A-50007"], {"id": ["A-50007"]}, {"id": {"id": "A-50007"}}],
    ids=["order-list", "order-id-list", "order-id-object"],
)
def test_a_nested_order_id_smuggled_as_a_list_or_object_is_refused(store, order):
    # refund_order reads the order at `order.id`; K-70009's own order is A-50009.
    proposal = {
        "actor": BOT,
        "tool": {
            "name": "refund_order",
            "arguments": {
                "order": order,
                "customer": "C-1009",
                "ticket": "K-70009",
                "refund": {"amount": "20.00", "currency": "USD"},
            },
        },
        "idempotency_key": "nested",
    }

    result = decide_or_refuse(acme_guard(store), proposal)

    assert isinstance(result, ProposalError), described(result)
    assert store.count() == 0


@dataclass
class AcmeApp:
    client: TestClient
    guard: Guard
    store: SqlStore
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def decide(self, who: str, body: Any) -> httpx.Response:
        return self.client.post("/v1/decisions", json=body, headers=self.auth(who))


@pytest.fixture
def acme_app(store: SqlStore) -> Iterator[AcmeApp]:
    """The HTTP app over the acme guard, with tokens for two agents and a tier2 person."""
    guard = acme_guard(store)
    tokens = Tokens(store, clock=guard.now)
    secrets = {
        name: tokens.create(subject_id=who["id"], role=who["role"], is_ai=who["is_ai"])[0]
        for name, who in {"bot": BOT, "other": OTHER_BOT, "tom": TOM}.items()
    }
    # A crash must come back as the 500 a client would see, not as an exception in the test.
    with TestClient(create_app(guard), raise_server_exceptions=False) as client:
        yield AcmeApp(client=client, guard=guard, store=store, tokens=secrets)


@pytest.mark.parametrize(
    "changes",
    [SMUGGLED["order-list"], SMUGGLED["order-object"], SMUGGLED["customer-list"]],
    ids=["order-list", "order-object", "customer-list"],
)
def test_an_id_smuggled_as_a_list_or_object_gets_422_over_http(acme_app, changes):
    answer = acme_app.decide("bot", smuggling(**changes))

    assert answer.status_code == 422, f"{answer.status_code} {answer.json().get('outcome')}"
    assert answer.json()["error"] == "invalid_input"
    assert acme_app.store.count() == len(acme_app.tokens)  # the tokens' own records only


# 4. Invented case ids --------------------------------------------------------------------------


def test_a_case_id_the_case_data_does_not_hold_is_never_allowed(store):
    result = decide_or_refuse(
        acme_guard(store),
        refund(order="A-50003", customer="C-1003", case="K-99999", amount="20.00", key="inv"),
    )

    assert not (isinstance(result, Decision) and result.outcome in ALLOWED), described(result)


def test_invented_case_ids_do_not_walk_around_a_budget_keyed_on_the_case(store, tmp_path):
    per_case = (
        "budgets:\n"
        "  - id: budget.case-refunds\n"
        "    key: case\n"
        "    window: 30d\n"
        '    limit: "40.00"\n'
        "    actions: [refund]\n"
        "    outcomes: [allow, allow_exception]\n"
        "    route_to: tier1\n"
    )
    pack = acme_pack_with(tmp_path, "budgets.yaml", "budgets:\n", per_case)
    guard = acme_guard(store, pack=pack)
    cases = ["K-70003", "K-90001", "K-90002"]
    parts = [
        guard.decide(
            refund(order="A-50003", customer="C-1003", case=case, amount="20.00", key=f"c{i}")
        )
        for i, case in enumerate(cases)
    ]

    assert allowed_total(parts) <= Decimal("40.00"), outcomes(parts)


# 5. Unmapped tools -----------------------------------------------------------------------------


@pytest.fixture
def default_pack_guard(store, tmp_path) -> Guard:
    """The acme pack with `unknown_tools` left at its default (was `pass`, now `route`)."""
    pack = acme_pack_with(tmp_path, "pack.yaml", "unknown_tools: route\n", "")
    assert pack.unknown_tools == "route"
    return acme_guard(store, pack=pack)


def refused_at_wrap(wrap: Any, call: Any) -> ConfigurationError | None:
    """Wrap a tool; if that is accepted, call it (the attack). The ConfigurationError, if any."""
    try:
        wrapped = wrap()
    except ConfigurationError as exc:
        return exc
    with contextlib.suppress(DiscretionError):
        call(wrapped)
    return None


def test_an_unmapped_decorated_function_never_runs_ungoverned(default_pack_guard):
    ran: list[str] = []

    def goodwill_payout(amount: str, customer_id: str) -> str:
        ran.append(amount)
        return f"paid {amount}"

    refused = refused_at_wrap(
        lambda: default_pack_guard.governed(actor=BOT)(goodwill_payout),
        lambda wrapped: wrapped(amount="500.00", customer_id="C-1003"),
    )

    assert ran == [], f"the unmapped tool ran ungoverned: {ran}"
    assert refused is not None, "decorating an unmapped function was accepted"
    assert "acme-support" in str(refused)
    assert "ungoverned_tools" in str(refused) or "action=" in str(refused)


def test_an_unmapped_langchain_tool_never_runs_ungoverned(default_pack_guard):
    ran: list[str] = []

    @tool
    def goodwill_payout(amount: str, customer_id: str) -> str:
        """Pay the customer goodwill money."""
        ran.append(amount)
        return f"paid {amount}"

    refused = refused_at_wrap(
        lambda: default_pack_guard.wrap_tools([goodwill_payout], actor=BOT),
        lambda wrapped: wrapped[0].invoke({"amount": "500.00", "customer_id": "C-1003"}),
    )

    assert ran == [], f"the unmapped tool ran ungoverned: {ran}"
    assert refused is not None, "wrapping an unmapped langchain tool was accepted"
    assert "acme-support" in str(refused)
    assert "goodwill_payout" in str(refused)


def test_a_misspelled_action_is_refused_at_decoration(store):
    guard = acme_guard(store)
    ran: list[str] = []

    def issue_credit(amount: str, customer_id: str, case_id: str, order_id: str) -> str:
        ran.append(amount)
        return f"refunded {amount}"

    refused = refused_at_wrap(
        lambda: guard.governed(action="refnd", actor=BOT)(issue_credit),
        lambda wrapped: wrapped(
            amount="64.99", customer_id="C-1003", case_id="K-70003", order_id="A-50003"
        ),
    )

    assert ran == [], f"the misspelled action's tool ran: {ran}"
    assert refused is not None, "action='refnd' was accepted at decoration"
    assert "refnd" in str(refused)
    assert "acme-support" in str(refused)


# 6. Working tables outside the chain: tests/security/test_ledger_truth.py


# 7. Smaller attacks ----------------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_non_finite_claim_value_gets_422_not_500(acme_app, literal):
    proposal = refund(
        order="A-50003",
        customer="C-1003",
        case="K-70003",
        amount="64.99",
        key="claim",
        claims=[{"field": "shipment.status", "value": 0.5}],
    )
    body = json.dumps(proposal).replace("0.5", literal)

    answer = acme_app.client.post(
        "/v1/decisions",
        content=body,
        headers={**acme_app.auth("bot"), "Content-Type": "application/json"},
    )

    assert answer.status_code == 422, f"{answer.status_code} {answer.text[:200]}"
    assert answer.json()["error"] == "invalid_input"


def test_every_page_and_api_response_forbids_framing(acme_app):
    client = acme_app.client
    decision = acme_app.decide(
        "bot",
        refund(order="A-50007", customer="C-1007", case="K-70007", amount="649.00", key="frame"),
    )
    assert decision.json()["outcome"] == "route"
    answers = {"POST /v1/decisions": decision}
    answers["GET /ui/sign-in"] = client.get("/ui/sign-in")
    answers["GET /ui (no session)"] = client.get("/ui", follow_redirects=False)
    assert sign_in(client, acme_app.tokens["tom"]).status_code == 303
    for path in ("/ui", f"/ui/approvals/{decision.json()['id']}", "/ui/exposure"):
        answers[f"GET {path}"] = client.get(path)
    for path in ("/v1/approvals", f"/v1/approvals/{decision.json()['id']}"):
        answers[f"GET {path}"] = client.get(path, headers=acme_app.auth("tom"))
    answers["GET /v1/approvals (no token)"] = client.get("/v1/approvals")
    for path in ("/health", "/docs", "/openapi.json"):
        answers[f"GET {path}"] = client.get(path)

    unframed = {
        name: (answer.headers.get("x-frame-options"), answer.headers.get("content-security-policy"))
        for name, answer in answers.items()
        if answer.headers.get("x-frame-options", "").upper() != "DENY"
        or "frame-ancestors 'none'" not in answer.headers.get("content-security-policy", "")
    }
    assert not unframed, f"framable (x-frame-options, csp): {unframed}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served_process(tmp_path: Path) -> Iterator[str]:
    """`discretion serve` on the acme pack as an operator starts it; its base URL."""
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    SqlStore(db).close()
    port = _free_port()
    source = str(Path(discretion.__file__).resolve().parents[1])  # this checkout's src/
    environment = {**os.environ, "PYTHONPATH": source}
    command = [sys.executable, "-c", "from discretion.cli import app; app()", "serve"]
    command += ["--pack", str(ACME_PACK), "--db", db, "--port", str(port)]
    command += ["--checkpoint-every", "0"]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=tmp_path,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            try:
                process.wait(timeout=0.05)  # a poll interval; an early exit ends it
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"serve exited: {log.read_text(errors='replace')[-2000:]}")
        else:
            pytest.fail(f"serve did not start: {log.read_text(errors='replace')[-2000:]}")
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_a_spoofed_x_forwarded_for_does_not_reset_the_sign_in_throttle(served_process):
    # Five failed sign-ins per address per 15 minutes; each attempt claims a new address.
    statuses = []
    with httpx.Client(base_url=served_process, timeout=10) as browser:
        for attempt in range(7):
            page = browser.get("/ui/sign-in")
            answer = browser.post(
                "/ui/sign-in",
                data={"token": f"dsc_guess{attempt}", "csrf_token": csrf_of(page.text)},
                headers={"X-Forwarded-For": f"203.0.113.{attempt + 1}"},
            )
            statuses.append(answer.status_code)

    assert statuses == [401] * 5 + [429] * 2


def test_a_503_during_a_database_outage_does_not_name_the_database(tmp_path):
    folder = tmp_path / "ledger"
    folder.mkdir()
    url = f"sqlite:///{folder / 'ledger.db'}"
    store = SqlStore(url)
    guard = acme_guard(store)
    with TestClient(create_app(guard), raise_server_exceptions=False) as client:
        store.engine.dispose()
        shutil.rmtree(folder)  # the database is gone

        answers = {
            "GET /health": client.get("/health"),
            "POST /v1/decisions": client.post(
                "/v1/decisions",
                json=refund(
                    order="A-50003", customer="C-1003", case="K-70003", amount="1", key="x"
                ),
                headers={"Authorization": "Bearer dsc_" + "x" * 43},
            ),
        }
    store.close()

    for name, answer in answers.items():
        assert answer.status_code == 503, name
        assert answer.json()["error"] == "unavailable"
        assert str(folder) not in answer.text, f"{name}: {answer.text}"
        assert "sqlite:" not in answer.text, f"{name}: {answer.text}"


def test_the_same_key_from_two_agents_gives_each_its_own_decision(store):
    guard = acme_guard(store)
    first = guard.decide(
        refund(order="A-50003", customer="C-1003", case="K-70003", amount="64.99", key="shared")
    )
    assert first.outcome is Outcome.ALLOW

    second = decide_or_refuse(
        guard,
        refund(
            order="A-50007",
            customer="C-1007",
            case="K-70007",
            amount="30.00",
            key="shared",
            actor=OTHER_BOT,
        ),
    )

    assert isinstance(second, Decision), described(second)
    assert second.id != first.id
    assert second.actor_id == OTHER_BOT["id"]
    assert second.outcome is Outcome.ALLOW


def test_a_reused_keys_answer_never_names_another_agents_decision(acme_app):
    first = acme_app.decide(
        "bot",
        refund(order="A-50003", customer="C-1003", case="K-70003", amount="64.99", key="shared"),
    )
    assert first.status_code == 200

    other = acme_app.decide(
        "other",
        refund(
            order="A-50007",
            customer="C-1007",
            case="K-70007",
            amount="30.00",
            key="shared",
            actor=OTHER_BOT,
        ),
    )

    assert first.json()["id"] not in other.text, other.text


def governed_refund(guard: Guard, ran: list[Any]) -> Any:
    """The acme `issue_refund` tool as a governed function that records the amount it got."""

    @guard.governed(actor=BOT)
    def issue_refund(
        amount: Any,
        currency: str,
        customer_id: str,
        case_id: str,
        order_id: str,
        weight: Any = None,
    ) -> str:
        ran.append(amount)
        return f"refunded {amount}"

    return issue_refund


A_50003 = {"customer_id": "C-1003", "case_id": "K-70003", "order_id": "A-50003", "currency": "USD"}


@pytest.mark.parametrize(
    "amount",
    ["٦٤.٩٩", "1_000", "1_0.00", "+64.99", "-0.00", " 64.99"],
    ids=[
        "arabic-indic-digits",
        "underscore",
        "underscore-small",
        "plus-sign",
        "negative-zero",
        "leading-space",
    ],
)
def test_a_non_canonical_amount_is_refused_and_never_reaches_the_tool(store, amount):
    guard = acme_guard(store)
    ran: list[Any] = []

    with contextlib.suppress(ProposalError, CallNotAllowed):
        governed_refund(guard, ran)(amount=amount, **A_50003)
    decided = decide_or_refuse(
        guard, refund(order="A-50003", customer="C-1003", case="K-70003", amount=amount, key="a")
    )

    assert ran == [], f"the tool got amount {ran!r}"
    assert isinstance(decided, ProposalError), described(decided)


@pytest.mark.parametrize("amount", ["64.99", "64.990", "6.499e1"])
def test_the_tool_receives_exactly_the_amount_that_was_governed(store, amount):
    guard = acme_guard(store)
    ran: list[Any] = []

    try:
        result = governed_refund(guard, ran).call(amount=amount, **A_50003)
    except ProposalError:
        result = None  # refusing a non-canonical amount is fine too

    if result is not None:
        governed = result.decision.amount
        assert ran == [str(governed.amount)], f"governed {governed}, the tool got {ran!r}"
    else:
        assert ran == []


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_non_finite_number_in_another_tool_argument_is_refused(store, value):
    guard = acme_guard(store)

    decided = decide_or_refuse(
        guard,
        refund(
            order="A-50003",
            customer="C-1003",
            case="K-70003",
            amount="10.00",
            key="nan",
            weight=value,
        ),
    )

    stored = [record["body"]["proposal"]["tool"]["arguments"] for record in store.export()]
    assert isinstance(decided, ProposalError), f"{described(decided)}; recorded: {stored}"
    assert stored == []


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_governed_function_given_a_non_finite_argument_is_refused(store, value):
    guard = acme_guard(store)
    ran: list[Any] = []

    try:
        governed_refund(guard, ran)(amount="10.00", weight=value, **A_50003)
    except ProposalError:
        refused: Exception | None = None
    except Exception as exc:  # noqa: BLE001 - any other error is the finding
        refused = exc
    else:
        refused = AssertionError("the call was not refused")

    assert ran == []
    assert refused is None, f"{type(refused).__name__}: {refused}"
    assert store.count() == 0
