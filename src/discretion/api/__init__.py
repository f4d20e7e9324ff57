"""The HTTP face of discretion: a decision API for agents and a web UI for approvers.

`create_app(guard)` builds one FastAPI app; `discretion serve --pack PATH` runs it with uvicorn.
The app needs the server extra (`pip install 'discretion[server]'`); the bearer tokens it
authenticates with (`Tokens`, `Identity`, `TOKEN_PREFIX`) do not, so the command line and
scripts can make and revoke tokens with the core install alone. The app's names are imported on
first use, and raise an `ImportError` naming the extra when it is missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from discretion.api._auth import TOKEN_PREFIX, Identity, Tokens

if TYPE_CHECKING:
    from discretion.api._app import create_app
    from discretion.api._problems import Problem
    from discretion.api._routes import ApproveIn, NoteIn, RevokeIn

__all__ = [
    "TOKEN_PREFIX",
    "ApproveIn",
    "Identity",
    "NoteIn",
    "Problem",
    "RevokeIn",
    "Tokens",
    "create_app",
]

# The names that need the server extra, and the module each lives in.
_SERVER = {
    "ApproveIn": "discretion.api._routes",
    "NoteIn": "discretion.api._routes",
    "Problem": "discretion.api._problems",
    "RevokeIn": "discretion.api._routes",
    "create_app": "discretion.api._app",
}


def __getattr__(name: str) -> Any:
    module = _SERVER.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import fastapi  # noqa: F401 - checked first so the error names the extra
        import jinja2  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"discretion.api.{name} needs the server extra ({exc.name} is missing):"
            " pip install 'discretion[server]'"
        ) from exc
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
