"""Tokens need only the core install; the app names the server extra when it is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import discretion
import discretion.api

SOURCE = str(Path(discretion.__file__).parents[1])

WITHOUT_FASTAPI = """
import sys
sys.modules["fastapi"] = None  # `import fastapi` now fails as if it were not installed

from discretion.api import TOKEN_PREFIX, Identity, Tokens
import discretion.api
import discretion.cli

print(TOKEN_PREFIX, Identity.__name__, Tokens.__name__)
try:
    discretion.api.create_app
except ImportError as exc:
    print(exc)
"""


def test_tokens_import_without_fastapi_and_the_app_names_the_server_extra():
    env = {**os.environ, "PYTHONPATH": SOURCE}
    ran = subprocess.run(
        [sys.executable, "-c", WITHOUT_FASTAPI], capture_output=True, text=True, env=env
    )
    assert ran.returncode == 0, ran.stderr
    tokens, missing = ran.stdout.splitlines()
    assert tokens == "dsc_ Identity Tokens"
    assert missing == (
        "discretion.api.create_app needs the server extra (fastapi is missing):"
        " pip install 'discretion[server]'"
    )


def test_the_app_names_are_there_with_the_server_extra():
    from discretion.api import ApproveIn, NoteIn, Problem, RevokeIn, create_app

    assert create_app.__module__ == "discretion.api._app"
    assert {ApproveIn.__name__, NoteIn.__name__, Problem.__name__, RevokeIn.__name__} == {
        "ApproveIn",
        "NoteIn",
        "Problem",
        "RevokeIn",
    }
    assert discretion.api.create_app is create_app
