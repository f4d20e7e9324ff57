"""The app factory: one FastAPI app serving the decision API, the approver UI and OpenAPI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from anyio import CapacityLimiter
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from discretion import __version__
from discretion.api._auth import Tokens
from discretion.api._headers import SecurityHeaders
from discretion.api._limits import RequestLimits
from discretion.api._problems import install
from discretion.api._routes import a_person, api_router, authenticated
from discretion.api._sessions import Sessions
from discretion.api._state import AppState
from discretion.api._ui import FormRejected, SignInRequired, ui_router
from discretion.api._webhooks import background_lifespan, document_webhooks
from discretion.errors import ConfigurationError
from discretion.guard import Guard
from discretion.webhooks import Deliverer

__all__ = ["create_app"]

_HERE = Path(__file__).parent
_VENDOR = "/static/vendor"

IN_PROCESS_CONCURRENCY = 2
"""Decisions at once in one process when only the database is across the network.

A decision is mostly Python, and a process's threads share one interpreter lock: more threads
only take turns, and on SQLite they slow the thread holding the database's write lock, which
every worker waits for. Measured with `benchmarks/http_decisions.py` (16 connections, two
cores, SQLite): with 40 at once, two workers decided 1.5x as fast as one; with two, 1.9-2.0x.

When nothing a decision waits on is across the network (`Pipeline.decides_inline`: in-process
on an embedded SQLite store) it is decided on the event loop itself, with no worker thread: the
hop to a thread and back cost more than the decision's own waits (one worker, acme,
`http_decisions.py`: 464 decisions/s through a thread, 781/s on the loop; see
benchmarks/README.md).
"""
WAITING_CONCURRENCY = 40
"""Decisions at once when context providers or the LLM judge wait on the network: anyio's
thread limit, so slow answers overlap."""

_DESCRIPTION = """\
Decide proposals from agents in any language, and let people decide the cases routed to them.

Authenticate with `Authorization: Bearer <token>`; make tokens with `discretion token create`.
The approver web UI is at [/ui](/ui).
"""


def _fact(value: Any) -> str:
    """A context fact as an approver reads it: money as money, JSON scalars as JSON."""
    if isinstance(value, dict) and set(value) == {"amount", "currency"}:
        return f"{value['currency']} {value['amount']}"
    if isinstance(value, list):
        return ", ".join(_fact(item) for item in value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _when(moment: datetime | None, *, day: bool = False) -> Markup:
    """A time for the desk: UTC in the page, shown in the approver's zone by local-time.js."""
    if moment is None:
        return Markup("")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d") if day else utc.strftime("%Y-%m-%d %H:%M UTC")
    flag = ' data-day="yes"' if day else ""
    return Markup('<time datetime="{}"{}>{}</time>').format(utc.isoformat(), Markup(flag), text)


def _mount_docs(app: FastAPI) -> None:
    """Serve Swagger UI at `/docs` and ReDoc at `/redoc` from the package's own copies.

    FastAPI's defaults load both from a CDN, so the pages were blank wherever the service
    cannot reach the internet; `static/vendor/README.md` says where the copies come from.
    """
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{_VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{_VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            redoc_js_url=f"{_VENDOR}/redoc/redoc.standalone.js",
            redoc_favicon_url="/favicon.ico",
            with_google_fonts=False,
        )


def _mount_metrics(app: FastAPI, state: AppState, *, is_open: bool) -> None:
    """Serve the guard's Prometheus metrics at `/metrics` when prometheus_client is installed.

    They hold each budget's use and share of its limit, from which the limit follows, so a
    person's bearer token is asked for unless `is_open`; an agent's is refused.
    """
    try:
        from discretion._metrics import CONTENT_TYPE, GuardMetrics
    except ImportError:  # pragma: no cover - prometheus-client ships in the `server` extra
        return
    metrics = GuardMetrics(state.guard)
    app.state.metrics = metrics
    bearer = HTTPBearer(auto_error=False)

    async def scraper(request: Request) -> None:
        a_person(
            authenticated(state.tokens, await bearer(request)),
            "only people read the metrics: budget use there tells a limit kept private",
        )

    @app.get(
        "/metrics", include_in_schema=False, dependencies=[] if is_open else [Depends(scraper)]
    )
    def scrape() -> Response:
        # Counts and gauges only, no ids or facts.
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)


def create_app(
    guard: Guard,
    *,
    tokens: Tokens | None = None,
    session_ttl: timedelta = timedelta(hours=8),
    secure_cookies: bool = False,
    max_body_bytes: int = 1_000_000,
    max_json_depth: int = 64,
    concurrency: int | None = None,
    webhooks: Deliverer | None = None,
    webhook_every_s: float = 5.0,
    open_metrics: bool = False,
) -> FastAPI:
    """The HTTP app over a guard: `/v1` (JSON API), `/ui` (approver UI), `/metrics`, `/docs`.

    Example:
        ```python
        app = create_app(Guard(load_pack("pack/"), store="sqlite:///discretion.db"))
        uvicorn.run(app, port=8080)
        ```

    Args:
        guard: decides, records and keeps the approval queue; its store keeps tokens and sessions.
        tokens: where bearer tokens are checked; the guard's store when absent.
        session_ttl: how long a UI sign-in lasts.
        secure_cookies: send the UI's cookies over HTTPS only; set it behind TLS.
        max_body_bytes: the largest request body accepted (413 above it).
        max_json_depth: the deepest JSON nesting accepted in a body (422 beyond it).
        concurrency: how many decisions this process works on at once, each in a worker
            thread; more wait their turn, already parsed. By default, when a decision waits
            on nothing but an embedded SQLite store (`Pipeline.decides_inline`: no LLM judge,
            in-process context), one at a time on the event loop, with no worker thread; 2
            when only the database is across the network; else 40, so waits on the network
            overlap.
        webhooks: delivers the ledger's events to webhook endpoints while the app runs (its
            lifespan), every `webhook_every_s` seconds, after expiring overdue approvals.
        webhook_every_s: seconds between the app's background passes, which expire overdue
            approvals (with or without webhooks) and deliver the webhooks.
        open_metrics: serve `/metrics` to anyone who reaches it, without a token, for a
            Prometheus that cannot send one. Budget use there tells each limit, private or
            not: set it only where no agent can reach the port. By default `/metrics` asks for
            a person's bearer token (`Authorization: Bearer dsc_...`) and refuses an agent's.

    Raises:
        ConfigurationError: `concurrency` is below 1.
    """
    store = guard.store
    if concurrency is not None and concurrency < 1:
        raise ConfigurationError(
            f"concurrency must be at least 1 decision at once, not {concurrency}"
        )
    deciding = None
    if concurrency is not None:
        deciding = CapacityLimiter(concurrency)
    elif not guard.pipeline.decides_inline:
        deciding = CapacityLimiter(
            IN_PROCESS_CONCURRENCY if guard.in_process else WAITING_CONCURRENCY
        )
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.filters["fact"] = _fact
    templates.env.filters["when"] = _when
    state = AppState(
        guard=guard,
        store=store,
        tokens=tokens or Tokens(store, clock=guard.now),
        sessions=Sessions(store, clock=guard.now, ttl=session_ttl),
        templates=templates,
        secure_cookies=secure_cookies,
        deciding=deciding,
    )
    app = FastAPI(
        title="discretion",
        version=__version__,
        description=_DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=background_lifespan(guard, webhooks, webhook_every_s),
    )
    app.state.deciding = state.deciding
    install(app)
    app.add_middleware(RequestLimits, max_body_bytes=max_body_bytes, max_json_depth=max_json_depth)
    # Added last, so outermost: errors answered by the middleware above carry the headers too.
    app.add_middleware(SecurityHeaders)

    async def to_sign_in(request: Request, exc: Exception) -> Response:
        return RedirectResponse("/ui/sign-in", status_code=303)

    async def form_rejected(request: Request, exc: Exception) -> Response:
        return templates.TemplateResponse(
            request, "error.html", {"session": None, "error": str(exc)}, status_code=403
        )

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(FormRejected, form_rejected)
    app.include_router(api_router(state))
    app.include_router(ui_router(state))
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    @app.get("/health", summary="Health", tags=["health"])
    def health() -> JSONResponse:
        """Whether the service can read its ledger; the pack it decides with."""
        records = store.count()
        return JSONResponse(
            {
                "status": "ok",
                "pack": guard.pack.name,
                "policy_version": guard.pack.version,
                "ledger_records": records,
            }
        )

    _mount_docs(app)
    _mount_metrics(app, state, is_open=open_metrics)
    document_webhooks(app)

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/ui", status_code=307)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return HTMLResponse(status_code=204)

    return app
