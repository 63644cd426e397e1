"""Request bodies over the limit get the service's JSON 413, whoever detects them.

FastAPI's `max_body_size` (Starlette's RequestBodyLimitMiddleware) counts streamed bodies
and honours per-route limits, but when a Content-Length already exceeds the limit it answers
with its own text/plain 413 from outside every exception handler. This wrapper, placed
around the whole middleware stack, turns that answer into the shared JSON error body.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODY = json.dumps({"error": "payload_too_large",
                    "detail": "The request body is larger than this route accepts"}).encode()

_REPLACED = {b"content-type", b"content-length", b"connection"}


class JSONPayloadTooLarge:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rewriting = False

        async def send_json_413(message: Message) -> None:
            nonlocal rewriting
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = dict(message.get("headers", []))
                if headers.get(b"content-type", b"").startswith(b"text/plain"):
                    rewriting = True
                    # Its other headers stay (X-Request-ID, as on every answer).
                    kept = [(name, value) for name, value in message.get("headers", [])
                            if name.lower() not in _REPLACED]
                    await send({"type": "http.response.start", "status": 413, "headers": [
                        *kept,
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_BODY)).encode()),
                        (b"connection", b"close"),
                    ]})
                    return
            if rewriting and message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": _BODY})
                return
            await send(message)

        await self.app(scope, receive, send_json_413)
