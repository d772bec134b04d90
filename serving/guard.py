"""ASGI middleware in front of the endpoints: the API key where one is needed, JSON bodies
only, not empty, of bounded size, and one error shape that names the field.

Requests addressed to a host name the server does not answer to get 403, whatever the path
(``allowed_hosts``): a server that ``growth serve`` binds to a loopback address answers only
``localhost``, ``127.0.0.1`` and ``[::1]``. Otherwise a web page a marketer opens could point
its own domain at 127.0.0.1 (DNS rebinding) and read the scores and audiences of a server
running on the marketer's machine: the browser then counts the page and the server as one
origin. A request without a Host header (HTTP/1.0, not a browser) passes.

When ``GROWTH_API_KEY`` is set, the keyed paths (``/propensity``, ``/audience``) need it in
the ``X-API-Key`` header (compared in constant time), checked before the body is read: 401
otherwise.

BentoML 1.4 has no request-size limit and reads any body whole; it also picks a decoder from
Content-Type (multipart, and pickle on internal calls). Here a POST must be JSON in UTF-8
and uncompressed (415 otherwise: another charset or a Content-Encoding names itself, rather
than coming back as invalid JSON) and at most ``max_body_bytes`` (413): the declared
Content-Length is checked before anything is read, a chunked body is counted while it
streams in. A repeated Content-Type, Content-Length or Content-Encoding is a 400 (BentoML
decodes by the first Content-Type, so a second one could pass a form or multipart body off
as JSON), as is a Content-Length that is not a whole number. An empty body on an endpoint
that takes one is a 400 with an example body (BentoML would read it as ``{}``, yet ``null``
is a 400).

Every error answer of the app behind, whatever the method, leaves in the shape of
``error_body``: BentoML answers pydantic errors with 400 ``{"error": "1 validation error for
X", "detail": [...]}``, whose ``error`` text is rewritten to say which field and what was
expected, e.g. ``k: Input should be less than or equal to 200``; a rule between fields gets
the field its error type names (``rule_fields``) as its ``loc``, and loses pydantic's "Value
error, " prefix; a body that is not JSON because it starts with a byte-order mark or is not
UTF-8 says so, and where (the body is kept while the app reads it, for that message only).
Starlette's plain-text 404 and 405 and BentoML's ``{"error": ...}`` answers get the
``detail`` list, the method and path.
Answers made outside this middleware keep their own shape: the 504 of BentoML's timeout
middleware (``{"error": ...}``) and uvicorn's plain-text 400 for malformed HTTP.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from http.client import responses as STATUS_PHRASES
from typing import Any

from pydantic import BaseModel, Field, ValidationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"
API_KEY_ENV = "GROWTH_API_KEY"
API_KEY_HEADER = b"x-api-key"
BIND_HOST_ENV = "GROWTH_BIND_HOST"  # the address `growth serve` binds (unset: unknown)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
MAX_LISTED_ERRORS = 5
BOM = b"\xef\xbb\xbf"


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="The field at fault, with list indices (e.g. "
                                             "[\"household_ids\", 3]); empty when it is the "
                                             "request as a whole.")
    msg: str
    type: str | None = Field(None, description="pydantic's error type, on validation errors "
                                        "(e.g. missing, less_than_equal, campaign_required).")


class ErrorBody(BaseModel):
    """The shape of every error answer (``error_body``)."""

    error: str = Field(description="The errors in words: 'field: message', joined by '; '.")
    detail: list[ErrorDetail]


def error_body(field: str | None, message: str) -> dict[str, Any]:
    """The shape of every error answer of the service."""
    text = f"{field}: {message}" if field else message
    return {"error": text, "detail": [{"loc": [field] if field else [], "msg": message}]}


def describe(detail: list[dict[str, Any]]) -> str:
    """``field: message; ...`` from pydantic's error list (input values left out); a message
    that starts with its field's name is not prefixed with it again."""
    parts = []
    for err in detail[:MAX_LISTED_ERRORS]:
        loc = ".".join(str(x) for x in err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        parts.append(f"{loc}: {msg}" if loc and not msg.startswith(f"{loc} ") else msg)
    if len(detail) > MAX_LISTED_ERRORS:
        parts.append(f"... and {len(detail) - MAX_LISTED_ERRORS} more")
    return "; ".join(parts)


async def respond(send: Send, status: int, body: dict[str, Any],
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """``body`` as a JSON answer with ``status`` (and any extra ``headers``)."""
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", JSON),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


def api_key_ok(given: bytes | None, env: str = API_KEY_ENV) -> bool:
    """True when no key is configured in ``env``, or ``given`` equals it (constant time)."""
    expected = os.environ.get(env)
    if not expected:
        return True
    return hmac.compare_digest(given or b"", expected.encode())


def allowed_hosts(configured: Sequence[str], bind_host: str | None) -> frozenset[str] | None:
    """The host names to answer (as :func:`host_name` reads them); None answers any. ``configured``
    (``allowed_hosts`` in configs/serving.yaml) wins, ``*`` in it meaning any; without it, a
    loopback ``bind_host`` answers only :data:`LOOPBACK_NAMES`, and any other or unknown one
    (``bentoml serve`` run directly: BentoML binds 0.0.0.0) any name."""
    if configured:
        return None if "*" in configured else frozenset(host_name(h.encode("latin-1"))
                                                        for h in configured)
    try:
        loopback = bind_host is not None and ipaddress.ip_address(bind_host).is_loopback
    except ValueError:
        loopback = False
    return frozenset(LOOPBACK_NAMES) if loopback else None


def host_name(header: bytes) -> str:
    """``Host`` header value without its port, lower case: ``[::1]:3000`` -> ``::1``."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def host_refusal(scope: Scope, hosts: frozenset[str] | None) -> dict[str, Any] | None:
    """The 403 body for a request addressed (Host header) to a name not in ``hosts``;
    None when it may be answered (``hosts`` None answers any)."""
    if hosts is None:
        return None
    host = dict(scope["headers"]).get(b"host")
    if host is None or (name := host_name(host)) in hosts:
        return None
    return error_body("Host", (
        f"this server does not answer requests addressed to {name!r}; it answers "
        f"{', '.join(sorted(hosts))} (allowed_hosts in configs/serving.yaml)"))


class RequestGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int, keyed_paths: tuple[str, ...] = (),
                 examples: Mapping[str, str] | None = None,
                 rule_fields: Mapping[str, str] | None = None,
                 hosts: frozenset[str] | None = None) -> None:
        self.app = app
        self.hosts = hosts  # host names answered (allowed_hosts); None: any
        self.max_body_bytes = max_body_bytes
        self.keyed_paths = keyed_paths  # need the API key when one is configured
        self.examples = examples or {}  # path -> an example of the JSON body it takes
        self.rule_fields = rule_fields or {}  # error type of a rule between fields -> field

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if refusal := host_refusal(scope, self.hosts):
            return await respond(send, 403, refusal)
        headers = dict(scope["headers"])
        if scope["method"] != "POST":
            return await self.app(scope, receive, _ShapeErrors(scope, send))
        if len(headers) < len(scope["headers"]):  # a header repeated: rare, so checked here
            names = [name for name, _ in scope["headers"]]
            for name in (b"content-type", b"content-length", b"content-encoding"):
                if names.count(name) > 1:  # the app could read another one than checked here
                    return await respond(send, 400, error_body(
                        None, f"header {name.decode()} is given {names.count(name)} times; "
                              "give it once"))
        if scope["path"] in self.keyed_paths and not api_key_ok(headers.get(API_KEY_HEADER)):
            return await respond(send, 401, error_body(
                "X-API-Key", f"header missing or wrong: {scope['path']} needs the key set in "
                             f"{API_KEY_ENV} on the server"))
        media, *params = headers.get(b"content-type", JSON).split(b";")
        media = media.strip().lower()
        if media != JSON:
            return await respond(send, 415, error_body(
                None, f"Content-Type must be application/json, got {media.decode('latin-1')!r}"))
        unreadable = _unreadable_body(params, headers.get(b"content-encoding"))
        if unreadable:
            return await respond(send, 415, error_body(None, unreadable))
        declared = headers.get(b"content-length")
        if declared is not None:  # the server delivers exactly that many bytes: check it
            if not declared.isdigit():
                return await respond(send, 400, error_body(
                    None, f"Content-Length must be a whole number of bytes, got "
                          f"{declared.decode('latin-1')!r}"))
            if int(declared) > self.max_body_bytes:
                return await self._too_big(send)
            size = int(declared)
        else:  # chunked: count while the body streams in
            buffered = await self._buffered(receive)
            if buffered is None:
                return await self._too_big(send)
            receive, size = buffered
        example = self.examples.get(scope["path"])
        if size == 0 and example is not None:
            return await respond(send, 400, error_body(
                None, f"the request body is empty: POST {scope['path']} takes a JSON object, "
                      f"e.g. {example}"))
        body = _KeptBody(receive)
        await self.app(scope, body, _ShapeErrors(scope, send, body.chunks, self.rule_fields))

    async def _too_big(self, send: Send) -> None:
        await respond(send, 413, error_body(
            None, f"request body exceeds {self.max_body_bytes:,} bytes"))

    async def _buffered(self, receive: Receive) -> tuple[Receive, int] | None:
        """The whole body read into memory, replayed as one message, and its size; None past
        the limit. (A client gone mid-body: ``receive`` itself, which reports it.)"""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return receive, size
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

        return replay, size


class _KeptBody:
    """``receive`` that keeps the body chunks it passes on: an "Invalid JSON" answer then
    says whether a byte-order mark or a byte that is not UTF-8 is the cause."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.chunks: list[bytes] = []

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.chunks.append(message.get("body", b""))
        return message


UTF8 = (b"utf-8", b"utf8", b"us-ascii", b"ascii")


def _unreadable_body(params: list[bytes], encoding: bytes | None) -> str | None:
    """Why a JSON body cannot be read as sent, or None: the service reads uncompressed UTF-8
    (JSON's own encoding), and would otherwise call gzip or latin-1 bytes invalid JSON."""
    for param in params:
        name, _, value = param.partition(b"=")
        if name.strip().lower() == b"charset":
            charset = value.strip().strip(b'"').lower()
            if charset not in UTF8:
                return (f"Content-Type charset must be utf-8, got "
                        f"{charset.decode('latin-1')!r}: send the JSON body as UTF-8")
    if encoding is not None and encoding.strip().lower() not in (b"", b"identity"):
        return (f"Content-Encoding {encoding.strip().decode('latin-1')!r} is not supported: "
                "send the JSON body uncompressed")
    return None


def not_utf8_json(request_body: bytes) -> str | None:
    """Why ``request_body`` cannot be JSON before any parsing, or None: JSON on the network
    is UTF-8 without a byte-order mark (RFC 8259, section 8.1)."""
    if request_body.startswith(BOM):
        return "the body starts with a UTF-8 byte-order mark; send JSON without it"
    try:
        request_body.decode()
    except UnicodeDecodeError as exc:
        line = request_body.count(b"\n", 0, exc.start) + 1
        column = exc.start - (request_body.rfind(b"\n", 0, exc.start) + 1) + 1
        return (f"the body is not UTF-8: byte 0x{request_body[exc.start]:02X} at line {line} "
                f"column {column} (offset {exc.start}) is not valid UTF-8 (Latin-1 text?); "
                "send the JSON body as UTF-8")
    return None


def _clarified(err: dict[str, Any], request_body: bytes,
               rule_fields: Mapping[str, str]) -> dict[str, Any]:
    """One pydantic error as the client should read it: a rule between fields at the field
    ``rule_fields`` names, no "Value error, " prefix, and why a body is not JSON when
    the cause is its encoding."""
    kind, msg = err.get("type"), str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not err.get("loc") and kind in rule_fields:
        return {**err, "loc": [rule_fields[kind]], "msg": msg}
    if kind == "json_invalid":
        msg = not_utf8_json(request_body) or msg
    return {**err, "msg": msg}


def shaped_error(status: int, body: bytes, method: str, path: str,
                 allow: bytes | None, request_body: bytes = b"",
                 rule_fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An error answer's body in the shape of ``error_body``: a ``detail`` list (pydantic's,
    each entry ``_clarified`` with the ``request_body`` it is about, or ours) rewritten into
    the ``error`` text; else the message of BentoML's ``{"error": ...}`` or of a plain-text
    body, with the method and path of a routing error (404, 405) and the methods allowed
    (405)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = body.decode("utf-8", "replace").strip()
    if isinstance(data, dict) and isinstance(data.get("detail"), list):
        detail = [_clarified(err, request_body, rule_fields or {}) if isinstance(err, dict)
                  else err for err in data["detail"]]
        return {**data, "error": describe(detail), "detail": detail}
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        message = data["error"]
    else:
        message = data if isinstance(data, str) and data else STATUS_PHRASES.get(status, "Error")
    if status in (404, 405):
        message = f"{message}: {method} {path}"
    if allow:
        message = f"{message}; allowed: {allow.decode('latin-1')}"
    return error_body(None, message)


class _ShapeErrors:
    """Passes responses below 400 through; buffers an error answer and sends it as
    ``shaped_error`` says (``request_chunks``: the request body read so far)."""

    def __init__(self, scope: Scope, send: Send, request_chunks: Sequence[bytes] = (),
                 rule_fields: Mapping[str, str] | None = None) -> None:
        self.scope = scope
        self.send = send
        self.request_chunks = request_chunks  # the list _KeptBody fills
        self.rule_fields = rule_fields
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            return await self.send(message)
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return None
        headers = dict(self.start["headers"])  # lower-case names in ASGI
        body = json.dumps(shaped_error(self.start["status"], b"".join(self.chunks),
                                       self.scope["method"], self.scope["path"],
                                       headers.get(b"allow"), b"".join(self.request_chunks),
                                       self.rule_fields)).encode()
        kept = [(k, v) for k, v in self.start["headers"]
                if k.lower() not in (b"content-length", b"content-type")]
        await self.send({**self.start, "headers": [
            *kept, (b"content-type", JSON), (b"content-length", str(len(body)).encode())]})
        await self.send({"type": "http.response.body", "body": body})


class _SkipValidationErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


def quiet_client_errors() -> None:
    """BentoML logs a traceback at error level for every pydantic validation error: those
    are the client's 400s, not faults, and formatting them costs time under bad traffic."""
    logging.getLogger("bentoml._internal.server.http_app").addFilter(_SkipValidationErrors())
