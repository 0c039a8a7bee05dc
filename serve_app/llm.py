"""``ServeLLMBackend``: the translator's ``LLMBackend`` over a Ray Serve LLM deployment handle.

The GPU profile deploys vLLM through ``ray.serve.llm`` (an ``LLMConfig`` built with
``build_llm_deployment``) as its own autoscaled deployment; the ``LLMTranslatorDeployment`` talks to it with
OpenAI-format chat requests through this backend, awaiting the handle on the replica's event loop.
``ray.serve.llm``'s request model needs vLLM, so it is imported only when a request is built; without it
the request is a dict with the same fields (what ``serve_app.llm_standin``, the CPU stand-in, takes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pipelines.backends import Message
from pipelines.errors import BackendUnavailable

logger = logging.getLogger(__name__)


def _chat_request(**fields: Any) -> Any:
    """ray.serve.llm's ``ChatCompletionRequest`` when Ray Serve LLM is installed (the real ``LLMServer`` needs
    it), else the same fields as a dict: then no vLLM deployment can exist, and a stand-in answers
    (``serve_app.llm_standin``)."""
    try:
        from ray.serve.llm.openai_api_models import ChatCompletionRequest
    except ImportError:
        return dict(fields)
    return ChatCompletionRequest(**fields)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def answer_text(item: Any) -> str:
    """The assistant text of a (non-streamed) ChatCompletionResponse, as object or dict.

    Raises RuntimeError for an ErrorResponse (one failed request, not a dead server).
    """
    choices = _field(item, "choices")
    if not choices:
        error = _field(item, "error") or item
        message = _field(error, "message") or str(error)
        raise RuntimeError(f"the LLM deployment answered an error: {message}")
    content = _field(_field(choices[0], "message"), "content")
    return str(content or "")


class ServeLLMBackend:
    """An ``LLMBackend`` over the handle of a Ray Serve LLM (``LLMServer``) deployment.

    The handle is awaited, never blocked on: ``acomplete`` is the call (``async for`` over the
    ``DeploymentResponseGenerator``). ``complete``, the synchronous ``LLMBackend`` method the translator calls,
    must run in a worker thread: it hands ``acomplete`` to the event loop given by ``bind_loop`` (the replica's,
    where the handle lives) and waits for it there; with no loop bound it runs ``acomplete`` on a loop of its own.
    Called on a running event loop it raises RuntimeError (it would block that loop; a blocking ``next()`` on a
    handle's generator raises there too). Structured output uses OpenAI's ``response_format`` json_schema,
    which vLLM enforces with guided decoding.
    """

    def __init__(
        self,
        handle: Any,
        *,
        model_id: str,
        temperature: float = 0.0,
        request_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.handle = handle
        self.model_id = model_id
        self.temperature = temperature
        self.request_factory = request_factory or _chat_request
        self.name = f"ray_serve_llm:{model_id}"
        self.loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop ``complete`` runs the handle call on (the replica's; set from an async method)."""
        self.loop = loop

    def _request(self, messages: list[Message], json_schema: dict[str, Any] | None, max_tokens: int) -> Any:
        fields: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "stream": False,
        }
        if json_schema is not None:
            fields["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": json_schema, "strict": True},
            }
        return self.request_factory(**fields)

    async def acomplete(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        """One chat completion, awaited; see ``pipelines.backends.LLMBackend.complete`` for the contract."""
        request = self._request(messages, json_schema, max_tokens)
        try:
            # LLMServer.chat is an async generator; without streaming it yields one response.
            stream = self.handle.options(stream=True).chat.remote(request)
            first = await anext(aiter(stream), None)
        except Exception as exc:
            if _unavailable(exc):
                raise BackendUnavailable(f"the LLM deployment is unavailable: {exc}") from exc
            raise
        if first is None:
            raise RuntimeError("the LLM deployment returned no response")
        if isinstance(first, list):  # a batched stream chunk; only when stream=True slipped through
            raise TypeError("the LLM deployment streamed; expected one response")
        return answer_text(first)

    def complete(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        """``acomplete`` from a worker thread (see the class docstring); RuntimeError on a running loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            raise RuntimeError("ServeLLMBackend.complete would block the event loop; await acomplete() instead")
        call = self.acomplete(messages, json_schema=json_schema, max_tokens=max_tokens)
        if self.loop is None or self.loop.is_closed():
            return asyncio.run(call)
        return asyncio.run_coroutine_threadsafe(call, self.loop).result()


def _unavailable(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in (exc, exc.__cause__) if e is not None}
    return bool(names & {"DeploymentUnavailableError", "ActorDiedError", "RayActorError", "ActorUnavailableError"})
