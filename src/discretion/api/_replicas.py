"""The app each worker process of `discretion serve --workers N` builds for itself.

uvicorn starts workers by importing an app factory, so the settings travel in environment
variables. Workers share nothing but the database: budgets, citations, idempotency keys and
approvals are serialised there, so any number of them (and of hosts) can serve at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

__all__ = ["ENVIRONMENT", "app_from_environment"]

ENVIRONMENT = {
    "pack": "DISCRETION_SERVE_PACK",
    "db": "DISCRETION_SERVE_DB",
    "context": "DISCRETION_SERVE_CONTEXT",
    "secure_cookies": "DISCRETION_SERVE_SECURE_COOKIES",
    "concurrency": "DISCRETION_SERVE_CONCURRENCY",
}
"""The environment variable of each `serve` setting a worker reads."""


def app_from_environment() -> FastAPI:
    """Build the app from the `DISCRETION_SERVE_*` variables `serve` sets before forking."""
    from discretion.api._app import create_app
    from discretion.approvals._cli import _guard

    context = os.environ.get(ENVIRONMENT["context"])
    guard = _guard(
        Path(os.environ[ENVIRONMENT["pack"]]),
        os.environ[ENVIRONMENT["db"]],
        Path(context) if context else None,
        # The parent created the schema before starting the workers.
        create=False,
    )
    concurrency = os.environ.get(ENVIRONMENT["concurrency"])
    return create_app(
        guard,
        secure_cookies=os.environ.get(ENVIRONMENT["secure_cookies"]) == "1",
        concurrency=int(concurrency) if concurrency else None,
    )
