"""The HTTP face of discretion: a decision API for agents and a web UI for approvers.

`create_app(guard)` builds one FastAPI app; `discretion serve --pack PATH` runs it with uvicorn.
Needs the server extra: `pip install 'discretion[server]'`.
"""

try:
    import fastapi as _fastapi  # noqa: F401 - checked here so the error names the extra
    import jinja2 as _jinja2  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        f"discretion.api needs the server extra ({exc.name} is missing):"
        " pip install 'discretion[server]'"
    ) from exc

from discretion.api._app import create_app
from discretion.api._problems import Problem
from discretion.api._routes import ApproveIn, NoteIn, RevokeIn

__all__ = ["ApproveIn", "NoteIn", "Problem", "RevokeIn", "create_app"]
