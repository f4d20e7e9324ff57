"""The app `discretion serve` runs, in its own process or in each of its worker processes.

uvicorn starts workers by importing an app factory, so the settings travel in the environment:
`serve_workers` writes `Settings.to_environment()` before starting them, and each worker's
`app_from_environment` reads `Settings.from_environment()` back and builds its own guard with
`build_guard`, as a single process does. Workers share nothing but the database: budgets,
citations, idempotency keys and approvals are serialised there, so any number of them (and of
hosts) can serve at once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import uvicorn
from fastapi import FastAPI

from discretion.api._app import create_app
from discretion.guard import Guard
from discretion.settings import Settings, build_deliverer, build_guard

__all__ = ["app_from_environment", "app_from_settings", "serve_workers"]

_FACTORY = "discretion.api._replicas:app_from_environment"


def app_from_settings(settings: Settings, guard: Guard | None = None) -> FastAPI:
    """The app over the guard the settings describe, delivering its webhooks if it has any.

    Args:
        settings: the guard's settings and the server's (`secure_cookies`, `concurrency`).
        guard: the guard already built from `settings`, when the caller needs it too (serve's
            checkpoint writer); built here when absent.
    """
    guard = guard if guard is not None else build_guard(settings)
    return create_app(
        guard,
        secure_cookies=settings.secure_cookies,
        concurrency=settings.concurrency,
        webhooks=build_deliverer(settings, guard),
        webhook_every_s=settings.webhook_every_s,
        open_metrics=settings.open_metrics,
    )


def app_from_environment() -> FastAPI:
    """The app of one worker: `app_from_settings` on the settings `serve_workers` wrote."""
    return app_from_settings(Settings.from_environment())


def proxy_options(trusted_proxies: Sequence[str]) -> dict[str, Any]:
    """Uvicorn's options for `X-Forwarded-For`: read only from the proxies an operator trusts.

    uvicorn believes the header from 127.0.0.1 by default, so anyone who reached the server
    there (or through a proxy that passes the header on) chose the client address the sign-in
    throttle counts under. With no trusted proxy, the peer's own address is the client.
    """
    if not trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(trusted_proxies)}


def serve_workers(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    trusted_proxies: Sequence[str] = (),
) -> None:
    """Run `workers` uvicorn processes, each building its own app from `settings`.

    The caller has built a guard from the same settings first, which created the schema (the
    workers do not race to) and found any mistake in the settings before a worker started.
    """
    handed = replace(settings, create_schema=False).to_environment()
    # Each worker counts its own decisions; /metrics sums them from the files in this folder.
    with tempfile.TemporaryDirectory(prefix="discretion-metrics-") as folder:
        metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or folder
        with _environment({**handed, "PROMETHEUS_MULTIPROC_DIR": metrics}):
            uvicorn.run(
                _FACTORY,
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="info",
                **proxy_options(trusted_proxies),
            )


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables (which worker processes inherit), then restore them."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
