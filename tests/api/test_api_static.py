"""Static files and the API docs' assets, fetched over real HTTP from a uvicorn server.

In-process test clients never showed the fault: the request-limit middleware told the app the
client had gone as soon as the body was read, and a file response stopped after its headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import SHOP_PACK, FakeClock
from discretion import Guard, SqlStore
from discretion.api import create_app

from .helpers import served_over_http

STATIC = Path(__file__).resolve().parents[2] / "src" / "discretion" / "api" / "static"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = SqlStore(f"sqlite:///{tmp_path_factory.mktemp('static') / 'ledger.db'}")
    guard = Guard(SHOP_PACK, store=store, clock=FakeClock())
    with served_over_http(create_app(guard)) as url:
        yield url
    store.close()


def test_the_stylesheet_arrives_whole_over_real_http(base):
    response = httpx.get(f"{base}/static/style.css")
    assert response.status_code == 200
    assert response.content == (STATIC / "style.css").read_bytes()
    assert int(response.headers["content-length"]) == len(response.content)


def test_a_body_read_by_the_limits_still_reaches_the_route_over_real_http(base):
    response = httpx.post(f"{base}/v1/decisions", json={"action": "refund"})
    # No token: the route itself answered, after the middleware had read the body.
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", ["swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css"]),
        ("/redoc", ["redoc/redoc.standalone.js"]),
    ],
)
def test_api_docs_load_their_assets_from_the_package_not_a_cdn(base, page, assets):
    html = httpx.get(f"{base}{page}").text
    linked = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert [url for url in linked if "://" in url] == []
    for asset in assets:
        url = f"/static/vendor/{asset}"
        assert url in linked
        response = httpx.get(f"{base}{url}")
        assert response.status_code == 200
        assert response.content == (STATIC / "vendor" / asset).read_bytes()
