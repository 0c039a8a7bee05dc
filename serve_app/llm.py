"""``ServeLLMBackend``: the translator's ``LLMBackend`` over a Ray Serve LLM deployment handle.

The GPU profile deploys vLLM through ``ray.serve.llm`` (an ``LLMConfig`` built with
``build_llm_deployment``) as its own autoscaled deployment; the TranslatorDeployment talks to it with
OpenAI-format chat requests through this backend. ``ray.serve.llm`` needs vLLM, so it is imported only
when a request is built (``request_factory`` may be injected, as tests do on CPU).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pipelines.backends import Message
from pipelines.errors import BackendUnavailable

logger = logging.getLogger(__name__)


def _chat_request(**fields: Any) -> Any:
    try:
        from ray.serve.llm.openai_api_models import ChatCompletionRequest
    except ImportError as exc:
        raise BackendUnavailable(
            "Ray Serve LLM needs vLLM: pip install 'videotranslator[gpu]' (or 'ray[llm]')"
        ) from exc
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

    ``complete`` is synchronous: call it from a worker thread (Serve runs sync methods in a thread pool),
    never on an event loop. Structured output uses OpenAI's ``response_format`` json_schema, which vLLM
    enforces with guided decoding.
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

    def complete(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        """One chat completion; see ``pipelines.backends.LLMBackend``."""
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
        request = self.request_factory(**fields)
        try:
            # LLMServer.chat is an async generator; without streaming it yields one response.
            stream = self.handle.options(stream=True).chat.remote(request)
            first = next(iter(stream), None)
        except Exception as exc:
            if _unavailable(exc):
                raise BackendUnavailable(f"the LLM deployment is unavailable: {exc}") from exc
            raise
        if first is None:
            raise RuntimeError("the LLM deployment returned no response")
        if isinstance(first, list):  # a batched stream chunk; only when stream=True slipped through
            raise TypeError("the LLM deployment streamed; expected one response")
        return answer_text(first)


def _unavailable(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in (exc, exc.__cause__) if e is not None}
    return bool(names & {"DeploymentUnavailableError", "ActorDiedError", "RayActorError", "ActorUnavailableError"})
