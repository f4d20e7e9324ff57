from __future__ import annotations

import csv
import io
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from conftest import good_facts as facts
from discretion import SqlStore, load_pack
from discretion.cli import _common, app
from discretion.lineage import GENESIS, canonical_json, is_genuine, record_hash

SHOP_PACK = Path(__file__).parent / "packs" / "shop.yaml"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NOW_ARG = NOW.isoformat()


def refund(amount: str = "40.00", *, key: str = "k-1", customer: str = "c-1") -> dict[str, Any]:
    return {
        "actor": {"id": "bot-1", "role": "ai_agent", "is_ai": True},
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "amount": amount,
                "currency": "USD",
                "customer_id": customer,
                "case_id": "case-1",
                "order_id": "o-1",
            },
        },
        "rationale": {"text": "customer asked"},
        "idempotency_key": key,
    }


@dataclass
class Workspace:
    """A context file, a ledger database and a place for proposal files, all under tmp_path."""

    root: Path
    runner: CliRunner

    @property
    def db_path(self) -> Path:
        return self.root / "ledger.db"

    @property
    def db(self) -> str:
        return f"sqlite:///{self.db_path}"

    @property
    def context(self) -> Path:
        return self.root / "context.json"

    def proposal(self, name: str, data: Any) -> Path:
        path = self.root / f"{name}.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
        return path

    def invoke(self, *args: str | Path) -> Result:
        return self.runner.invoke(app, [str(a) for a in args])

    def check(self, *proposals: Path, json_output: bool = True, now: str = NOW_ARG) -> Result:
        args: list[str | Path] = ["check", "--pack", SHOP_PACK, "--context", self.context]
        args += ["--db", self.db, "--now", now, *proposals]
        return self.invoke(*args, *(["--json"] if json_output else []))

    def ledger(self, *args: str) -> Result:
        return self.invoke("ledger", *args, "--db", self.db)

    def connect(self) -> closing[sqlite3.Connection]:
        return closing(sqlite3.connect(self.db_path))

    def sql(self, *statements: str) -> None:
        with self.connect() as connection, connection:
            for statement in statements:
                connection.execute(statement)


@pytest.fixture(autouse=True)
def wide_plain_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    # Wide enough that rich neither wraps messages nor truncates table cells, and without colour,
    # whatever COLUMNS or FORCE_COLOR the test run inherits.
    monkeypatch.setattr(_common, "out", Console(width=250, color_system=None))
    monkeypatch.setattr(_common, "err", Console(stderr=True, width=250, color_system=None))


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    context = {
        "defaults": facts(),
        "customers": {"c-fraud": {"customer.fraud_flag": True}},
    }
    (tmp_path / "context.json").write_text(json.dumps(context), encoding="utf-8")
    return Workspace(root=tmp_path, runner=CliRunner())


@pytest.fixture
def three_decisions(ws: Workspace) -> Workspace:
    """A ledger of one chain with an allow, a route and a deny, in that order."""
    SqlStore(ws.db, partitions=1).close()
    result = ws.check(
        ws.proposal("a-allow", refund("40.00", key="k-1")),
        ws.proposal("b-route", refund("110.00", key="k-2")),
        ws.proposal("c-deny", refund("200.00", key="k-3")),
    )
    assert result.exit_code == 0, result.output
    return ws


def one_line(text: str) -> str:
    return " ".join(text.split())


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a rich table; a cell spread over several lines is joined by newlines."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if cells[0]:
            rows.append(cells)
        else:
            for index, cell in enumerate(cells):
                if cell:
                    rows[-1][index] += "\n" + cell
    return rows


def ledger_rows(ws: Workspace) -> list[tuple[int, str]]:
    with ws.connect() as connection:
        return connection.execute("SELECT seq, subject_id FROM ledger ORDER BY seq").fetchall()


def rehash(ws: Workspace, seq: int) -> None:
    """Edit record `seq`'s body (route becomes allow) and recompute its own hash to match."""
    with ws.connect() as connection, connection:
        kind, body, prev = connection.execute(
            "SELECT kind, body, prev_hash FROM ledger WHERE seq = ?", (seq,)
        ).fetchone()
        edited = body.replace('"outcome":"deny"', '"outcome":"allow"').replace(
            '"outcome":"route"', '"outcome":"allow"'
        )
        assert edited != body
        digest = record_hash(seq=seq, kind=kind, body=edited, prev_hash=prev)
        connection.execute(
            "UPDATE ledger SET body = ?, hash = ? WHERE seq = ?", (edited, digest, seq)
        )


def verify_error(ws: Workspace) -> str:
    """`ledger verify`'s error on one line, having checked that it failed."""
    result = ws.ledger("verify")
    assert result.exit_code == 1
    return one_line(result.stderr)


def broken_shop_pack(folder: Path, old: str, new: str) -> Path:
    """A copy of the shop pack with one exact piece of its YAML replaced, not loaded."""
    text = SHOP_PACK.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = folder / "broken.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


# check


def test_check_json_prints_the_decision(ws):
    result = ws.check(ws.proposal("p", refund("40.00")))

    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["outcome"] == "allow"
    assert decision["action"] == "refund"
    assert decision["rules"] == ["refund-within-30-days"]
    assert decision["required_role"] is None
    assert decision["amount"] == {"amount": "40.00", "currency": "USD"}
    assert decision["decided_at"] == "2026-11-26T12:00:00Z"
    assert decision["explanation"].startswith(
        "Approved: refund of USD 40.00 is within standard policy"
    )
    assert decision["policy_version"] == load_pack(SHOP_PACK).version
    assert decision["idempotency_key"] == "k-1"
    assert len(decision["lineage_hash"]) == 64


def test_check_json_routes_above_the_agents_authority(ws):
    result = ws.check(ws.proposal("p", refund("110.00")))

    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["outcome"] == "route"
    assert decision["rules"] == ["refund-within-30-days", "discretion.standard-authority"]
    assert decision["required_role"] == "tier1"
    assert decision["explanation"]


def test_check_json_of_several_proposals_is_a_list_in_order(ws):
    result = ws.check(
        ws.proposal("p1", refund("40.00", key="k-1")),
        ws.proposal("p2", refund("50.00", key="k-2", customer="c-fraud")),
    )

    assert result.exit_code == 0, result.output
    decisions = json.loads(result.stdout)
    assert [d["outcome"] for d in decisions] == ["allow", "deny"]
    assert decisions[1]["rules"] == ["fraud-flag"]
    assert "fraud review" in decisions[1]["explanation"]


def test_check_records_each_decision_in_the_ledger(ws):
    result = ws.check(
        ws.proposal("p1", refund("40.00", key="k-1")),
        ws.proposal("p2", refund("110.00", key="k-2")),
    )

    decisions = json.loads(result.stdout)
    assert ledger_rows(ws) == [(1, decisions[0]["id"]), (2, decisions[1]["id"])]


def test_check_again_with_the_same_key_returns_the_recorded_decision(ws):
    first = json.loads(ws.check(ws.proposal("p", refund("40.00"))).stdout)
    again = json.loads(ws.check(ws.proposal("p", refund("40.00"))).stdout)

    assert again["id"] == first["id"]
    assert again["lineage_hash"] == first["lineage_hash"]
    assert len(ledger_rows(ws)) == 1


def test_check_says_when_the_decision_shown_was_made_under_another_pack(ws, tmp_path):
    first = json.loads(ws.check(ws.proposal("p", refund("40.00"))).stdout)
    assert "decided before" not in ws.check(ws.proposal("p", refund("40.00"))).stderr
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        SHOP_PACK.read_text(encoding="utf-8").replace("pack: test-shop", "pack: test-shop-2"),
        encoding="utf-8",
    )
    again = ws.invoke(
        "check",
        "--pack",
        changed,
        "--context",
        ws.context,
        "--db",
        ws.db,
        "--now",
        NOW_ARG,
        ws.proposal("p", refund("40.00")),
        "--json",
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["id"] == first["id"]
    said = one_line(again.stderr)
    assert "note: " in said
    assert f"was decided before under policy {first['policy_version'][:19]}" in said
    assert "Give it an idempotency_key of its own, or use another --db" in said


def test_check_prints_a_table_of_several_decisions(ws):
    result = ws.check(
        ws.proposal("a-allow", refund("40.00", key="k-1")),
        ws.proposal("b-route", refund("110.00", key="k-2")),
        ws.proposal("c-deny", refund("200.00", key="k-3")),
        json_output=False,
    )

    assert result.exit_code == 0, result.output
    version = load_pack(SHOP_PACK).version
    assert f"decisions (policy {version[:19]})" in result.stdout
    assert table_rows(result.stdout) == [
        ["a-allow", "refund", "USD 40.00", "ai_agent", "allow", "", "refund-within-30-days"],
        [
            "b-route",
            "refund",
            "USD 110.00",
            "ai_agent",
            "route",
            "tier1",
            "refund-within-30-days\ndiscretion.standard-authority",
        ],
        ["c-deny", "refund", "USD 200.00", "ai_agent", "deny", "", "refund-above-order"],
    ]
    # The explanation is printed only for a single decision.
    assert "Approved:" not in result.stdout


def test_check_table_of_one_decision_prints_its_explanation(ws):
    result = ws.check(ws.proposal("p", refund("40.00")), json_output=False)

    assert result.exit_code == 0, result.output
    assert table_rows(result.stdout)[0][:5] == ["p", "refund", "USD 40.00", "ai_agent", "allow"]
    assert "Approved: refund of USD 40.00 is within standard policy" in one_line(result.stdout)


def test_check_a_malformed_proposal_exits_2_naming_the_field(ws):
    bad = refund()
    del bad["actor"]["role"]
    path = ws.proposal("bad", bad)

    result = ws.check(path)

    assert result.exit_code == 2
    assert f"error: {path}: proposal is not valid: actor.role: Field required" in one_line(
        result.stderr
    )
    assert json.loads(result.stdout) == []
    assert ledger_rows(ws) == []


def test_check_a_bad_amount_exits_2_naming_the_amount(ws):
    path = ws.proposal("bad", refund("12.3.4"))

    result = ws.check(path)

    assert result.exit_code == 2
    message = one_line(result.stderr)
    assert f"error: {path}:" in message
    assert "amount: '12.3.4' is not a decimal amount" in message


def test_check_a_file_that_is_not_json_exits_2(ws):
    path = ws.proposal("broken", '{"actor": ')

    result = ws.check(path)

    assert result.exit_code == 2
    assert f"error: {path}: not valid JSON:" in one_line(result.stderr)


def test_check_decides_the_good_proposals_beside_a_malformed_one(ws):
    bad = ws.proposal("bad", {"actor": {"id": "bot-1", "role": "ai_agent"}, "amount": "x"})

    result = ws.check(ws.proposal("good", refund("40.00")), bad)

    assert result.exit_code == 2
    assert json.loads(result.stdout)["outcome"] == "allow"
    assert f"error: {bad}:" in one_line(result.stderr)
    assert len(ledger_rows(ws)) == 1


def test_check_now_without_a_utc_offset_is_an_error(ws):
    result = ws.check(ws.proposal("p", refund()), now="2026-11-26T12:00:00")

    assert result.exit_code == 2
    assert "error: --now '2026-11-26T12:00:00' needs a UTC offset, such as +00:00" in one_line(
        result.stderr
    )
    assert result.stdout == ""
    assert not ws.db_path.exists(), "nothing is decided or recorded"


def test_check_now_that_is_not_a_time_is_an_error(ws):
    result = ws.check(ws.proposal("p", refund()), now="next tuesday")

    assert result.exit_code == 2
    assert "error: --now 'next tuesday' is not an ISO 8601 time" in one_line(result.stderr)


def test_check_now_decides_as_of_that_time(ws):
    # 40 days after delivery the 30-day rule no longer holds, so the refund routes.
    later = (NOW + timedelta(days=35)).isoformat()

    result = ws.check(ws.proposal("p", refund("40.00")), now=later)

    decision = json.loads(result.stdout)
    assert decision["decided_at"] == "2026-12-31T12:00:00Z"
    assert decision["outcome"] == "route"
    assert decision["rules"][0] == "discretion.not-standard"
    assert "refund-within-30-days" not in decision["rules"]


def test_check_with_a_broken_pack_exits_2_with_the_policy_error(ws, tmp_path):
    pack = broken_shop_pack(tmp_path, "currency: USD", "currency: XYZ")

    result = ws.invoke(
        "check", "--pack", pack, "--db", ws.db, "--now", NOW_ARG, ws.proposal("p", refund())
    )

    assert result.exit_code == 2
    assert f"error: {pack}:2: currency 'XYZ' is not a supported ISO 4217 code" in one_line(
        result.stderr
    )


def test_check_error_messages_are_printed_verbatim_not_as_markup(ws):
    # Input text is data: a bracketed value must be quoted as given, never read as rich markup.
    path = ws.proposal("bad", refund("[/x]12"))

    result = ws.check(path)

    assert result.exit_code == 2, result.output
    assert "'[/x]12' is not a decimal amount" in one_line(result.stderr)


# pack validate


def test_pack_validate_prints_the_version_and_counts():
    result = CliRunner().invoke(app, ["pack", "validate", str(SHOP_PACK)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"valid test-shop {load_pack(SHOP_PACK).version}"
    assert lines[1] == "2 actions, 4 roles, 10 rules, 3 budgets, from 1 file(s)"


def test_pack_validate_a_bad_pack_exits_1_with_the_policy_error(tmp_path):
    pack = broken_shop_pack(
        tmp_path, "when: shipment.status == 'lost'", "when: shipment.stauts == 'lost'"
    )
    lines = pack.read_text(encoding="utf-8").splitlines()
    line = next(n for n, row in enumerate(lines, 1) if "shipment.stauts" in row)

    result = CliRunner().invoke(app, ["pack", "validate", str(pack)])

    assert result.exit_code == 1
    message = one_line(result.stderr)
    assert message.startswith(
        f"error: {pack}:{line}, rule 'carrier-lost': unknown field 'shipment.stauts'"
    )
    assert "declared: actor.id, actor.is_ai, actor.role, amount" in message
    assert result.stdout == ""


def test_pack_validate_quotes_a_bracketed_expression_whole(tmp_path):
    pack = broken_shop_pack(tmp_path, "when: incident.active", 'when: "[incident.activ][0]"')

    result = CliRunner().invoke(app, ["pack", "validate", str(pack)])

    assert result.exit_code == 1
    assert "'[incident.activ][0]'" in one_line(result.stderr)


# ledger verify


def test_ledger_verify_an_empty_ledger(ws):
    assert ws.check(ws.proposal("bad", "{}")).exit_code == 2  # creates the schema, records none

    result = ws.ledger("verify")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok 0 records verify"


def test_ledger_verify_prints_ok_with_the_count(three_decisions):
    result = three_decisions.ledger("verify")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok 3 records verify"


def test_ledger_verify_names_a_record_whose_body_was_edited(three_decisions):
    ws = three_decisions
    subject = ledger_rows(ws)[1][1]
    ws.sql("""UPDATE ledger SET body = replace(body, '"outcome":"route"', '"outcome":"allow"')
              WHERE seq = 2""")

    assert verify_error(ws) == (
        f"error: ledger does not verify: record 2 (decision {subject}, partition 0) was edited:"
        " its content does not match its hash"
    )


def test_ledger_verify_names_a_record_edited_with_its_hash_recomputed(three_decisions):
    # Rewriting a record's own hash to match its new body moves the break to the next record.
    ws = three_decisions
    rehash(ws, 2)
    subject = ledger_rows(ws)[2][1]

    assert verify_error(ws) == (
        f"error: ledger does not verify: record 3 (decision {subject}, partition 0) does not"
        " follow the record before it in partition 0: its previous-hash does not match"
        " (deleted, inserted or reordered)"
    )


def test_ledger_verify_names_a_deleted_record(three_decisions):
    ws = three_decisions
    subject = ledger_rows(ws)[2][1]
    ws.sql("DELETE FROM ledger WHERE seq = 2")

    assert verify_error(ws) == (
        "error: ledger does not verify: partition 0 is missing its record 2: the next record in"
        f" it, record 3 (decision {subject}, partition 0), is its record 3 (deleted or reordered)"
    )


def test_ledger_verify_names_the_first_record_deleted(three_decisions):
    ws = three_decisions
    ws.sql("DELETE FROM ledger WHERE seq = 1")

    assert "partition 0 is missing its record 1: the next record in it, record 2" in verify_error(
        ws
    )


def test_ledger_verify_names_a_deleted_record_when_the_rest_are_renumbered(three_decisions):
    ws = three_decisions
    moved = ledger_rows(ws)[2][1]
    ws.sql(
        "DELETE FROM ledger WHERE seq = 2",
        "UPDATE ledger SET seq = 2, chain_seq = 2 WHERE seq = 3",
        "UPDATE ledger_head SET seq = 2",
    )

    assert verify_error(ws) == (
        f"error: ledger does not verify: record 2 (decision {moved}, partition 0) does not follow"
        " the record before it in partition 0: its previous-hash does not match (deleted,"
        " inserted or reordered)"
    )


def test_ledger_verify_names_reordered_records(three_decisions):
    ws = three_decisions
    third = ledger_rows(ws)[2][1]
    ws.sql(
        "UPDATE ledger SET seq = -1, chain_seq = -1 WHERE seq = 2",
        "UPDATE ledger SET seq = 2, chain_seq = 2 WHERE seq = 3",
        "UPDATE ledger SET seq = 3, chain_seq = 3 WHERE seq = -1",
    )

    assert verify_error(ws) == (
        f"error: ledger does not verify: record 2 (decision {third}, partition 0) does not follow"
        " the record before it in partition 0: its previous-hash does not match (deleted,"
        " inserted or reordered)"
    )


def test_ledger_verify_names_a_truncated_tail(three_decisions):
    ws = three_decisions
    ws.sql("DELETE FROM ledger WHERE seq = 3")

    assert verify_error(ws) == (
        "error: ledger does not verify: the head of partition 0 names its record 3 but the chain"
        " ends at record 2 (records were removed from the end, or the head was altered)"
    )


def test_ledger_verify_names_an_edited_last_record_even_with_its_hash_recomputed(three_decisions):
    # The head remembers the last hash, so the tail cannot be rewritten quietly either.
    ws = three_decisions
    rehash(ws, 3)

    message = verify_error(ws)
    assert message.startswith(
        "error: ledger does not verify: the last record of partition 0 does not match the hash"
        " its head recorded"
    )
    assert "the last record was rewritten" in message


def test_ledger_verify_on_a_database_without_a_ledger_is_an_error_not_a_traceback(ws):
    result = ws.ledger("verify")

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert one_line(result.stderr).startswith("error:")


# ledger export


def test_ledger_export_jsonl(three_decisions):
    ws = three_decisions

    result = ws.ledger("export", "--format", "jsonl")

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert {tuple(sorted(r)) for r in records} == {
        (
            "body",
            "chain_seq",
            "hash",
            "kind",
            "partition",
            "prev_hash",
            "recorded_us",
            "seq",
            "subject_id",
        )
    }
    # Each record verifies from the export alone: it holds all its hash covers.
    assert all(
        is_genuine(
            seq=r["chain_seq"],
            kind=r["kind"],
            body=canonical_json(r["body"]),
            prev_hash=r["prev_hash"],
            partition=r["partition"],
            subject_id=r["subject_id"],
            recorded_us=r["recorded_us"],
            hash=r["hash"],
        )
        for r in records
    )
    assert [(r["partition"], r["chain_seq"]) for r in records] == [(0, 1), (0, 2), (0, 3)]
    assert [r["kind"] for r in records] == ["decision"] * 3
    assert [r["subject_id"] for r in records] == [subject for _, subject in ledger_rows(ws)]
    assert [r["prev_hash"] for r in records] == [GENESIS, records[0]["hash"], records[1]["hash"]]
    decisions = [r["body"]["decision"] for r in records]
    assert [d["outcome"] for d in decisions] == ["allow", "route", "deny"]
    assert [d["rules"] for d in decisions] == [
        ["refund-within-30-days"],
        ["refund-within-30-days", "discretion.standard-authority"],
        ["refund-above-order"],
    ]
    assert records[1]["body"]["decision"]["required_role"] == "tier1"
    assert [d["id"] for d in decisions] == [r["subject_id"] for r in records]
    assert all("lineage_hash" not in d for d in decisions), "a body cannot hold its own hash"
    # Least context: the snapshot holds the fields refund reads, and not customer.tier.
    assert records[0]["body"]["context"]["shipment.status"] == "delivered"
    assert "customer.tier" not in records[0]["body"]["context"]


def test_ledger_export_jsonl_is_the_default(three_decisions):
    default = three_decisions.ledger("export")
    jsonl = three_decisions.ledger("export", "--format", "jsonl")

    assert default.exit_code == 0, default.output
    assert default.stdout == jsonl.stdout


def test_ledger_export_csv(three_decisions):
    ws = three_decisions
    jsonl = [json.loads(line) for line in ws.ledger("export").stdout.splitlines()]

    result = ws.ledger("export", "--format", "csv")

    assert result.exit_code == 0, result.output
    reader = csv.DictReader(io.StringIO(result.stdout))
    version = load_pack(SHOP_PACK).version
    expected = [
        {
            "seq": str(seq),
            "kind": "decision",
            "subject_id": record["subject_id"],
            "decided_at": "2026-11-26T12:00:00Z",
            "action": "refund",
            "outcome": outcome,
            "actor_id": "bot-1",
            "actor_role": "ai_agent",
            "amount": amount,
            "currency": "USD",
            "required_role": required_role,
            "rules": rules,
            "policy_version": version,
            "hash": record["hash"],
        }
        for seq, record, (outcome, amount, required_role, rules) in zip(
            (1, 2, 3),
            jsonl,
            [
                ("allow", "40.00", "", "refund-within-30-days"),
                ("route", "110.00", "tier1", "refund-within-30-days discretion.standard-authority"),
                ("deny", "200.00", "", "refund-above-order"),
            ],
            strict=True,
        )
    ]
    assert list(reader) == expected
    # The columns, in this order, are the export's contract.
    assert reader.fieldnames == list(expected[0])


def test_ledger_export_to_a_file(three_decisions, tmp_path):
    target = tmp_path / "out.csv"

    result = three_decisions.ledger("export", "--format", "csv", "--output", str(target))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote 3 records to {target}" in one_line(result.stderr)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [row["outcome"] for row in rows] == ["allow", "route", "deny"]
