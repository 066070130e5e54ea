"""A webhook receiver that checks tilework's signatures before trusting a payload.

Run it with ``python examples/webhook_receiver.py`` and point a run's ``callback_url``
at ``http://127.0.0.1:9000/hooks`` (allowing 127.0.0.1/32 in
``TILEWORK_WEBHOOK_ALLOW_NETWORKS`` on the server).
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

from tilework.webhooks import (
    WebhookVerificationError,
    verify_mosaic_signature,
    verify_standard,
)

PLAIN_SECRET = os.environ.get("HOOK_SECRET", "")
SIGNING_SECRET = os.environ.get("HOOK_SIGNING_SECRET", "")


def accept(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Return the event if its signature checks out; raise otherwise."""
    if SIGNING_SECRET:
        verify_standard(SIGNING_SECRET, headers, body)
    elif PLAIN_SECRET and not verify_mosaic_signature(
        headers.get("X-Mosaic-Signature"), PLAIN_SECRET
    ):
        raise WebhookVerificationError("X-Mosaic-Signature does not match")
    event: dict[str, Any] = json.loads(body)
    return event


class Hooks(BaseHTTPRequestHandler):
    seen: ClassVar[set[str]] = set()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            event = accept(dict(self.headers.items()), body)
        except WebhookVerificationError as exc:
            self.send_response(401)
            self.end_headers()
            print("rejected:", exc)
            return

        self.send_response(204)
        self.end_headers()
        if event["event_id"] in self.seen:
            return
        self.seen.add(event["event_id"])
        print(event["sequence"], event["flag"], event.get("status"))


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", 9000), Hooks).serve_forever()
