from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from discretion.context._providers import ContextRequest
from discretion.errors import ConfigurationError, ContextError
from discretion.money import Money

__all__ = ["SqliteCaseStore"]

_EXPOSURE = re.compile(r"^exposure\.(?P<action>[a-z0-9_]+?)(?P<count>_count)?_(?P<days>\d+)d$")
_ENTITIES = ("customer", "order", "shipment", "case", "incident")
_TABLES = {
    "customer": "customers",
    "order": "orders",
    "shipment": "shipments",
    "case": "cases",
    "incident": "incidents",
}


_HELD_FOR = {"shipment": frozenset({"order"}), "incident": frozenset({"customer"})}


class SqliteCaseStore:
    """Facts from a SQLite case database: customers, orders, shipments, cases, incidents, payouts.

    Each column becomes a field named `<entity>.<column>`: `customers.tier` is `customer.tier`.
    The declared column type says how a value is read: `TEXT`, `INTEGER`, `BOOLEAN` (0/1),
    `TIMESTAMP` (ISO 8601 text with an offset), `MONEY` (an integer of minor units in the row's
    `currency` column) and `TAGS` (a JSON list of strings).

    How rows are found: the customer and case by the proposal's ids; the order by the proposal's
    order id, else the case's `order_id`; the newest shipment of that order; the incident active
    at decision time (`started_at <= now` and `ended_at` null or later) in the customer's `region`,
    with `incident.active` telling whether there is one. `exposure.<action>_<N>d` sums the
    customer's `payouts` for that action (`all` for every action) over the last N days, and
    `exposure.<action>_count_<N>d` counts them; payouts in more than one currency in the window
    cannot be summed (a `ContextError`: the decision routes).
    """

    in_process = True
    """It reads a local SQLite file."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._types: dict[str, dict[str, str]] = {}
        for entity, table in _TABLES.items():
            columns = self._db.execute(f"PRAGMA table_info({table})").fetchall()
            self._types[entity] = {row["name"]: (row["type"] or "").upper() for row in columns}

    @classmethod
    def open(cls, path: str | Path) -> SqliteCaseStore:
        """Open an existing case database read-only."""
        if not Path(path).is_file():
            raise ConfigurationError(f"{path}: no such case database")
        connection = sqlite3.connect(
            f"file:{Path(path).resolve()}?mode=ro", uri=True, check_same_thread=False
        )
        try:
            return cls(connection)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise ConfigurationError(
                f"{path}: not a SQLite case database ({exc}); give a .sql case script, a SQLite"
                " database or a .json facts file"
            ) from None

    @classmethod
    def from_sql(cls, path: str | Path, *, database: str | Path = ":memory:") -> SqliteCaseStore:
        """Build a case database from a SQL script (schema and rows), in memory by default."""
        try:
            script = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"{path}: cannot read the case script: {exc.strerror}"
            ) from exc
        connection = sqlite3.connect(str(database), check_same_thread=False)
        try:
            connection.executescript(script)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"{path}: the case script failed: {exc}") from exc
        return cls(connection)

    def records_of(self, name: str) -> frozenset[str]:
        """The record a fact named after a table of its own is read through (`ContextProvider`).

        A shipment's facts are its order's, an incident's are the customer's region's.
        """
        return _HELD_FOR.get(name.partition(".")[0], frozenset())

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        """Read the requested facts from the case database."""
        try:
            with self._lock:
                return self._fetch(request)
        except sqlite3.Error as exc:
            raise ContextError(f"case database failed: {exc}") from exc

    def _row(self, entity: str, sql: str, *params: Any) -> sqlite3.Row | None:
        if not self._types[entity]:
            return None
        row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
        return row

    def _fetch(self, request: ContextRequest) -> dict[str, Any]:
        wanted = {name.split(".", 1)[0] for name in request.fields}
        rows: dict[str, sqlite3.Row | None] = {}
        case = None
        if request.case_id is not None:
            case = self._row("case", "SELECT * FROM cases WHERE id = ?", request.case_id)
        rows["case"] = case
        customer_id = request.customer_id or (case["customer_id"] if case is not None else None)
        customer = None
        if customer_id is not None:
            customer = self._row("customer", "SELECT * FROM customers WHERE id = ?", customer_id)
        rows["customer"] = customer
        order_id = request.order_id
        if order_id is None and case is not None and "order_id" in case.keys():  # noqa: SIM118
            order_id = case["order_id"]
        if wanted & {"order", "shipment"} and order_id is not None:
            rows["order"] = self._row("order", "SELECT * FROM orders WHERE id = ?", order_id)
            rows["shipment"] = self._row(
                "shipment",
                "SELECT * FROM shipments WHERE order_id = ? ORDER BY rowid DESC LIMIT 1",
                order_id,
            )
        facts: dict[str, Any] = {}
        if "incident" in wanted and customer is not None and "region" in customer.keys():  # noqa: SIM118
            now = request.now.isoformat()
            incident = self._row(
                "incident",
                # julianday() reads every ISO 8601 offset ('Z', '+02:00'), so times compare as
                # instants, not as text.
                "SELECT * FROM incidents WHERE region = ? AND julianday(started_at) <= julianday(?)"
                " AND (ended_at IS NULL OR julianday(ended_at) > julianday(?))"
                " ORDER BY julianday(started_at) DESC LIMIT 1",
                customer["region"],
                now,
                now,
            )
            rows["incident"] = incident
            facts["incident.active"] = incident is not None
        for name in request.fields:
            entity, _, column = name.partition(".")
            if entity == "exposure" and customer_id is not None:
                value = self._exposure(name, customer_id, request.now, request.currency)
                if value is not None:
                    facts[name] = value
                continue
            row = rows.get(entity)
            if row is None or column not in self._types.get(entity, {}):
                continue
            facts[name] = self._read(entity, column, row)
        return facts

    def _read(self, entity: str, column: str, row: sqlite3.Row) -> Any:
        kind = self._types[entity][column]
        value = row[column]
        if value is None:
            return None
        if kind == "BOOLEAN":
            return bool(value)
        if kind == "TIMESTAMP":
            return datetime.fromisoformat(value)
        if kind == "MONEY":
            return Money.from_minor(int(value), row["currency"])
        if kind == "TAGS":
            return tuple(json.loads(value))
        return value

    def _exposure(self, name: str, customer_id: str, now: datetime, currency: str | None) -> Any:
        match = _EXPOSURE.match(name)
        if match is None or "payouts" not in {
            row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }:
            return None
        since = (now - timedelta(days=int(match["days"]))).isoformat()
        clause = "" if match["action"] == "all" else " AND action = ?"
        params: list[Any] = [customer_id, since, now.isoformat()]
        if match["action"] != "all":
            params.append(match["action"])
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0), MIN(currency), MAX(currency)"
            " FROM payouts WHERE customer_id = ? AND julianday(at) > julianday(?)"
            f" AND julianday(at) <= julianday(?){clause}",
            params,
        ).fetchone()
        if match["count"]:
            return int(row[0])
        if row[2] != row[3]:
            # Minor units of two currencies are never added; leaving either out would understate
            # what the customer was paid. The decision routes, naming this.
            raise ContextError(
                f"context field {name!r}: customer {customer_id}'s payouts in the window are in"
                f" {row[2]} and {row[3]}; amounts in different currencies are never added, so"
                " it cannot be summed",
                field=name,
            )
        currency = row[2] or currency
        if currency is None:
            return None
        return Money.from_minor(int(row[1]), currency)
