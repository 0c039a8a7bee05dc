"""Any OpenAI-compatible chat server (vLLM serve, llama.cpp server, Ollama, OpenAI itself)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from pipelines.backends import Message
from pipelines.errors import BackendUnavailable
from pipelines.models import BUNDLED_PREFIX

if TYPE_CHECKING:
    from configs.settings import TranslatorSettings

logger = logging.getLogger(__name__)

# Structured-output styles, best first. Servers differ: OpenAI and vLLM take json_schema,
# llama.cpp's server takes json_object with a "schema", some take only json_object or nothing.
FORMATS = ("json_schema", "json_object_schema", "json_object", "plain")


def _response_format(style: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    if style == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    if style == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if style == "json_object":
        return {"type": "json_object"}
    return None


def _rejected_format(exc: BaseException) -> bool:
    """A 400/422, or a 500 about response_format (llama.cpp's server answers 500 to a schema it can't parse)."""
    import openai

    if isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError)):
        return True
    return isinstance(exc, openai.InternalServerError) and "response_format" in str(exc)


def _transient(exc: BaseException) -> bool:
    import openai

    transient = (openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError)
    return isinstance(exc, transient) and not _rejected_format(exc)


class OpenAIBackend:
    """Chat completions over HTTP with ``settings.base_url``, ``api_key`` and ``model``.

    Connection errors, timeouts, 5xx and 429 are retried ``attempts`` times with exponential
    backoff (``retry_wait_s`` doubling, at most 8 s), then raise BackendUnavailable. A 400/422
    on a structured-output request falls back to the next style in FORMATS; the style that
    worked is kept for later calls. Auth and not-found errors raise BackendUnavailable at once.
    """

    def __init__(self, settings: TranslatorSettings, *, attempts: int = 4, retry_wait_s: float = 0.5) -> None:
        try:
            import openai
        except ImportError as exc:
            raise BackendUnavailable("the openai package is not installed; pip install openai") from exc
        self._client = openai.OpenAI(
            base_url=settings.base_url, api_key=settings.api_key, timeout=settings.timeout_s, max_retries=0
        )
        model = settings.model
        self._model = model.removeprefix(BUNDLED_PREFIX)
        self._base_url = settings.base_url
        self._temperature = settings.temperature
        self._attempts = max(1, attempts)
        self._retry_wait_s = retry_wait_s
        self._style = 0
        self.name = f"openai:{self._model}@{settings.base_url}"

    def complete(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        """Chat completion; see the class docstring for retries and structured-output fallback."""
        if json_schema is None:
            return self._retrying(messages, None, max_tokens)
        error: Exception | None = None
        for style in range(self._style, len(FORMATS)):
            try:
                text = self._retrying(messages, _response_format(FORMATS[style], json_schema), max_tokens)
            except Exception as exc:
                if not _rejected_format(exc):
                    raise
                logger.info("server rejected response_format %s (%s); trying the next", FORMATS[style], exc)
                error = exc
                continue
            self._style = style
            return text
        assert error is not None
        raise error

    def _retrying(self, messages: list[Message], response_format: dict[str, Any] | None, max_tokens: int) -> str:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._retry_wait_s, max=8),
            retry=retry_if_exception(_transient),
            reraise=False,
        )
        try:
            return retrying(self._create, messages, response_format, max_tokens)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise BackendUnavailable(
                f"translation server {self._base_url} is unreachable after {self._attempts} attempts: {cause}"
            ) from cause

    def _create(self, messages: list[Message], response_format: dict[str, Any] | None, max_tokens: int) -> str:
        import openai

        extra: dict[str, Any] = {"response_format": response_format} if response_format is not None else {}
        try:
            out = self._client.chat.completions.create(
                model=self._model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=self._temperature,
                **extra,
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
            raise BackendUnavailable(f"translation server {self._base_url} refused the request: {exc}") from exc
        return out.choices[0].message.content or ""
