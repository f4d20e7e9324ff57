"""An OpenAI-compatible endpoint on a local socket that answers every judge call with a verdict.

respx mocks httpx inside the test process; this serves the judge of a guard whose client the
test cannot reach (a `discretion serve` worker, or the SDK's default client), and records what
each request carried. It is a few lines of canned JSON, never a model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JUDGE_VARIABLES = (
    "DISCRETION_JUDGE_MODEL",
    "DISCRETION_JUDGE_BASE_URL",
    "DISCRETION_JUDGE_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
)
"""Where a judge reads its model, endpoint and key; tests clear them, then set what they use."""

JUSTIFIED = {
    "justified": True,
    "clause": "carrier-lost",
    "unsupported_claims": [],
    "reason": "The facts show the carrier confirmed the parcel lost.",
}


@dataclass
class Endpoint:
    url: str
    """The base URL to give the judge (`.../v1`)."""
    calls: list[dict[str, Any]] = field(default_factory=list)
    """Each request's path, Authorization header and JSON body, in arrival order."""


def _completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1764158400,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": json.dumps(JUSTIFIED)},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 412, "completion_tokens": 38, "total_tokens": 450},
    }


@contextmanager
def openai_endpoint() -> Iterator[Endpoint]:
    lock = threading.Lock()
    endpoint = Endpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                endpoint.calls.append(
                    {
                        "path": self.path,
                        "authorization": self.headers.get("Authorization"),
                        "body": body,
                    }
                )
            answer = json.dumps(_completion(body.get("model", ""))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
