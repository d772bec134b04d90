"""ASGI middleware in front of the endpoints: the API key where one is needed, JSON bodies
only, of bounded size, and one error shape that names the field.

When ``GROWTH_API_KEY`` is set, the keyed paths (``/audience``) need it in the ``X-API-Key``
header (compared in constant time), checked before the body is read: 401 otherwise.

BentoML 1.4 has no request-size limit and reads any body whole; it also picks a decoder
from Content-Type (multipart, and pickle on internal calls). Here a POST must be JSON
(415 otherwise) and at most ``max_body_bytes`` (413): the declared Content-Length is
checked before anything is read, a chunked body is counted while it streams in.
BentoML answers pydantic errors with 400 ``{"error": "1 validation error for X", "detail":
[...]}``; the ``error`` text is rewritten to say which field and what was expected, e.g.
``k: Input should be less than or equal to 200``.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import ValidationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"
API_KEY_ENV = "GROWTH_API_KEY"
API_KEY_HEADER = b"x-api-key"
MAX_LISTED_ERRORS = 5


def error_body(field: str | None, message: str) -> dict[str, Any]:
    """The error shape every 4xx of the service uses."""
    text = f"{field}: {message}" if field else message
    return {"error": text, "detail": [{"loc": [field] if field else [], "msg": message}]}


def describe(detail: list[dict[str, Any]]) -> str:
    """``field: message; ...`` from pydantic's error list (input values left out)."""
    parts = []
    for err in detail[:MAX_LISTED_ERRORS]:
        loc = ".".join(str(x) for x in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    if len(detail) > MAX_LISTED_ERRORS:
        parts.append(f"... and {len(detail) - MAX_LISTED_ERRORS} more")
    return "; ".join(parts)


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", JSON),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def api_key_ok(given: bytes | None, env: str = API_KEY_ENV) -> bool:
    """True when no key is configured in ``env``, or ``given`` equals it (constant time)."""
    expected = os.environ.get(env)
    if not expected:
        return True
    return hmac.compare_digest(given or b"", expected.encode())


class RequestGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int,
                 keyed_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.keyed_paths = keyed_paths  # need the API key when one is configured

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if scope["path"] in self.keyed_paths and not api_key_ok(headers.get(API_KEY_HEADER)):
            return await _respond(send, 401, error_body(
                "X-API-Key", f"header missing or wrong: {scope['path']} needs the key set in "
                             f"{API_KEY_ENV} on the server"))
        media = headers.get(b"content-type", JSON).split(b";")[0].strip().lower()
        if media != JSON:
            return await _respond(send, 415, error_body(
                None, f"Content-Type must be application/json, got {media.decode('latin-1')!r}"))
        declared = headers.get(b"content-length")
        if declared is not None:  # the server delivers exactly that many bytes: check it
            if not declared.isdigit() or int(declared) > self.max_body_bytes:
                return await self._too_big(send)
        else:  # chunked: count while the body streams in
            receive = await self._buffered(receive)
            if receive is None:
                return await self._too_big(send)
        await self.app(scope, receive, _RewriteValidationErrors(send))

    async def _too_big(self, send: Send) -> None:
        await _respond(send, 413, error_body(
            None, f"request body exceeds {self.max_body_bytes:,} bytes"))

    async def _buffered(self, receive: Receive) -> Receive | None:
        """The whole body read into memory, replayed as one message; None past the limit."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return receive
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay


class _RewriteValidationErrors:
    """Passes responses through, except 400 bodies, whose ``error`` text it rewrites."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 400:
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            return await self.send(message)
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return None
        body = b"".join(self.chunks)
        try:
            data = json.loads(body)
            if isinstance(data, dict) and isinstance(data.get("detail"), list):
                data["error"] = describe(data["detail"])
                body = json.dumps(data).encode()
        except ValueError:
            pass
        headers = [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


class _SkipValidationErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


def quiet_client_errors() -> None:
    """BentoML logs a traceback at error level for every pydantic validation error: those
    are the client's 400s, not faults, and formatting them costs time under bad traffic."""
    logging.getLogger("bentoml._internal.server.http_app").addFilter(_SkipValidationErrors())
