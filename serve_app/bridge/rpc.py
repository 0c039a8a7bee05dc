"""JSON-RPC 2.0 over one AMQP message body: parsing, dispatch, error objects (jsonrpc-py) and our error mapping.

Transport-free: ``RpcHandler.handle(body, key=..., owner=...)`` returns a ``HandledMessage`` that says what to
reply, whether the message is poison (dead-letter it, with the reason), whether the job queue was full
(requeue and pause) and which jobs to follow. The consumer (``consumer.py``) acts on it.

Error codes: the standard ones (-32700 parse, -32600 invalid request, -32601 method not found,
-32602 invalid params, -32603 internal) and domain errors in -32000..-32099, whose ``data`` is the same
envelope the HTTP API sends: ``{"status": "error", "message", "error": {"code", "detail"}}``.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jsonrpc import AsyncDispatcher, BatchRequest, Error, ErrorEnum, JSONSerializer, Request, Response
from jsonrpc.openrpc import UndefinedType

from pipelines.errors import VTError
from serve_app.auth import KeyRing
from serve_app.errors import QueueFull, Unauthorized
from serve_app.jobs.public import public_message

logger = logging.getLogger(__name__)

# With ``service.api_keys`` set, every request carries its key in this by-name param (see ``RpcHandler``).
API_KEY_PARAM = "api_key"

# Errors that mean the message itself is bad: it can never succeed, so it is dead-lettered (never requeued).
# -32603 is there too: an unexpected failure is parked in the DLQ for an operator instead of looping.
POISON_CODES: frozenset[int] = frozenset(
    {
        ErrorEnum.PARSE_ERROR,
        ErrorEnum.INVALID_REQUEST,
        ErrorEnum.METHOD_NOT_FOUND,
        ErrorEnum.INVALID_PARAMETERS,
        ErrorEnum.INTERNAL_ERROR,
    }
)

# Domain error code (VTError.code) -> JSON-RPC code in -32000..-32099. Unlisted codes get -32000.
DOMAIN_CODES: dict[str, int] = {
    "error": -32000,
    "job_not_found": -32001,
    "file_not_found": -32002,
    "input_not_found": -32003,
    "queue_full": -32004,
    "job_not_cancellable": -32005,
    "unknown_language": -32006,
    "invalid_media": -32007,
    "no_audio_stream": -32008,
    "bad_request": -32009,
    "request_too_large": -32010,
    "burn_in_needs_video": -32011,
    "translation_failed": -32012,
    "model_error": -32013,
    "backend_unavailable": -32014,
    "media_error": -32015,
    "input_outside_storage": -32016,
    "cancelled": -32017,
    "unauthorized": -32018,
    "queue_unavailable": -32019,
    "media_too_long": -32020,
}
# Domain errors that name a bad param of the call: JSON-RPC's own invalid params (-32602), with our envelope.
PARAM_CODES = frozenset({"invalid_voice", "invalid_speakers"})

# Protocol errors as jsonrpc-py raises them carry no envelope (and echo the bad request back in ``data``);
# ours replace that with the envelope and, where the library's message is vague, a clearer one.
_PROTOCOL: dict[int, tuple[str, str | None]] = {
    ErrorEnum.PARSE_ERROR: ("parse_error", "the message body is not valid JSON (UTF-8)"),
    ErrorEnum.INVALID_REQUEST: ("invalid_request", None),
    ErrorEnum.METHOD_NOT_FOUND: ("method_not_found", None),
    ErrorEnum.INVALID_PARAMETERS: ("invalid_params", None),
    ErrorEnum.INTERNAL_ERROR: ("internal_error", "internal error while handling the request"),
}
_VAGUE = {"Invalid request object": 'a JSON-RPC request must be an object with "jsonrpc": "2.0" and a "method" '
          "(a batch: an array of such objects)"}  # fmt: skip

_serializer = JSONSerializer()


def envelope(code: str, message: str, detail: str | None = None) -> dict[str, Any]:
    """Our error envelope (the HTTP API's body for errors)."""
    return {"status": "error", "message": message, "error": {"code": code, "detail": detail}}


def domain_error(exc: VTError) -> Error:
    """A VTError as a JSON-RPC error in -32000..-32099 (a bad param, ``PARAM_CODES``: -32602) with the envelope in ``data``; server paths are redacted
    (``public_message``) as in the HTTP envelope."""
    message = public_message(exc.message)
    detail = public_message(exc.detail) if isinstance(exc.detail, str) else exc.detail
    code = ErrorEnum.INVALID_PARAMETERS if exc.code in PARAM_CODES else DOMAIN_CODES.get(exc.code, -32000)
    return Error(code=code, message=message, data=envelope(exc.code, message, detail))


def with_envelope(error: Error) -> Error:
    """``error`` with our envelope in ``data`` (domain errors already have it and are returned as they are)."""
    if isinstance(error.data, dict) and error.data.get("status") == "error":
        return error
    name, fixed = _PROTOCOL.get(int(error.code), ("error", None))
    message = fixed or _VAGUE.get(error.message, error.message)
    return Error(code=error.code, message=message, data=envelope(name, message))


def invalid_params(message: str, *, code: str = "invalid_params") -> Error:
    return Error(code=ErrorEnum.INVALID_PARAMETERS, message=message, data=envelope(code, message))


def message_key(message_id: str | None, body: bytes) -> str:
    """The idempotency key of one AMQP message: its ``message_id``, or a hash of the body when it has none."""
    if message_id:
        return f"amqp:{message_id}"
    return "amqp-sha256:" + hashlib.sha256(body).hexdigest()


@dataclass
class Watch:
    """A job to follow after the ack: progress events, and the final reply when ``wait``."""

    job_id: str
    request_id: str | float | None
    wait: bool


@dataclass
class CallState:
    """What one message's handlers share: its key and owner, and what they found out."""

    key: str
    owner: str | None
    scoped: bool = False  # API keys are on: ``owner`` is the caller's key owner, and jobs are private to it
    index: int = 0
    batch: bool = False
    request_id: str | float | None = None
    queue_full: QueueFull | None = None
    watches: list[Watch] = field(default_factory=list)

    def item_key(self) -> str:
        """The idempotency key of the current request (batch items get their index appended)."""
        return f"{self.key}#{self.index}" if self.batch else self.key


@dataclass
class HandledMessage:
    """One message, handled: what to reply and what the consumer should do with the message."""

    reply: dict[str, Any] | list[dict[str, Any]] | None
    poison: str | None = None
    poison_code: int | None = None
    queue_full: QueueFull | None = None
    watches: list[Watch] = field(default_factory=list)

    def reply_body(self) -> bytes | None:
        return None if self.reply is None else _serializer.serialize(self.reply)


_current: contextvars.ContextVar[CallState] = contextvars.ContextVar("vt_bridge_call")


def current_call() -> CallState:
    """The state of the message being handled (for method implementations)."""
    return _current.get()


class RpcHandler:
    """Handles one message body against a method table (plain async functions, see ``methods.py``)."""

    def __init__(
        self, methods: dict[str, Callable[..., Any]], *, max_batch_size: int = 32, api_keys: Iterable[str] = ()
    ) -> None:
        self.dispatcher = AsyncDispatcher()
        for name, function in methods.items():
            self.dispatcher.register(function, name=name)
        self.max_batch_size = max_batch_size
        self.keys = KeyRing(api_keys)

    async def handle(self, body: bytes, *, key: str, owner: str | None = None) -> HandledMessage:
        """Parse and run ``body``; never raises for anything the sender did wrong."""
        state = CallState(key=key, owner=None if self.keys.enabled else owner, scoped=self.keys.enabled)
        token = _current.set(state)
        try:
            return await self._handle(body, state)
        finally:
            _current.reset(token)

    async def _handle(self, body: bytes, state: CallState) -> HandledMessage:
        try:
            obj = _serializer.deserialize(body)
        except Error as error:
            return _protocol_failure(error)
        if isinstance(obj, list):
            if not obj:
                return _protocol_failure(Error(code=ErrorEnum.INVALID_REQUEST, message="empty batch"))
            if len(obj) > self.max_batch_size:
                message = f"batch of {len(obj)} requests; at most {self.max_batch_size}"
                return _protocol_failure(Error(code=ErrorEnum.INVALID_REQUEST, message=message))
            state.batch = True
            errors: list[Error] = []
            responses = []
            # One at a time, in order: bounded work per message and deterministic per-item idempotency keys.
            for index, request in enumerate(BatchRequest.from_json(obj)):
                state.index = index
                response = await self._one(request, state, errors)
                if response is not None:
                    responses.append(response.json)
            return self._outcome(responses or None, state, errors)
        errors = []
        response = await self._one(Request.from_json(obj), state, errors)
        return self._outcome(None if response is None else response.json, state, errors)

    async def _one(self, request: Request | Error, state: CallState, errors: list[Error]) -> Response | None:
        if isinstance(request, Error):
            error = with_envelope(request)
            errors.append(error)
            return Response(error=error, response_id=None)
        state.request_id = None if isinstance(request.request_id, UndefinedType) else request.request_id
        kwargs = request.kwargs
        presented = kwargs.pop(API_KEY_PARAM, None)  # accepted (and ignored) when auth is off
        try:
            if self.keys.enabled:
                state.owner = self.keys.owner(presented if isinstance(presented, str) else None)
                if state.owner is None:
                    message = f"missing or invalid API key: send it in the by-name param {API_KEY_PARAM!r}"
                    errors.append(domain_error(Unauthorized(message)))  # it can never succeed: dead-letter it
                    raise errors[-1]
            result = await self.dispatcher.dispatch(request.method, *request.args, **kwargs)
        except Error as error:
            if error.code == ErrorEnum.INTERNAL_ERROR:
                logger.error("bridge: %s failed unexpectedly", request.method, exc_info=error.__cause__ or error)
            error = with_envelope(error)
            if error.code in POISON_CODES:
                errors.append(error)
            response = Response(error=error, response_id=request.request_id)
        else:
            response = Response(body=result, response_id=request.request_id)
        return None if request.is_notification else response

    @staticmethod
    def _outcome(reply: Any, state: CallState, errors: list[Error]) -> HandledMessage:
        first = errors[0] if errors else None
        return HandledMessage(
            reply=reply,
            poison=None if first is None else f"{int(first.code)} {first.message}",
            poison_code=None if first is None else int(first.code),
            queue_full=state.queue_full,
            watches=state.watches,
        )


def _protocol_failure(error: Error) -> HandledMessage:
    error = with_envelope(error)
    return HandledMessage(
        reply=Response(error=error, response_id=None).json,
        poison=f"{int(error.code)} {error.message}",
        poison_code=int(error.code),
    )


def response_body(result: Any, request_id: str | float | None) -> bytes:
    """A serialized success response (for the second, final reply of ``translate_video`` with ``wait``)."""
    return _serializer.serialize(Response(body=result, response_id=request_id).json)


def request_body(method: str, params: dict[str, Any] | list[Any], request_id: str | int | None = None) -> bytes:
    """A serialized request; without ``request_id`` it is a notification (no response, even with reply_to)."""
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if request_id is not None:
        obj["id"] = request_id
    return _serializer.serialize(obj)
