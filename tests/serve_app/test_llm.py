"""ServeLLMBackend against a fake Ray Serve LLM handle (vLLM is not needed on CPU)."""

from __future__ import annotations

from typing import Any

import pytest

from configs.settings import TranslatorSettings
from pipelines.backends import LLMBackend
from pipelines.errors import BackendUnavailable
from pipelines.translate import LLMTranslator
from serve_app.llm import ServeLLMBackend, answer_text


class FakeChat:
    def __init__(self, answers: list[Any]) -> None:
        self.answers, self.requests = answers, []  # type: ignore[var-annotated]

    def remote(self, request: dict[str, Any]) -> Any:
        self.requests.append(request)
        return iter([self.answers.pop(0)])


class FakeHandle:
    """Mimics ``handle.options(stream=True).chat.remote(request)`` → a generator of responses."""

    def __init__(self, answers: list[Any]) -> None:
        self.chat = FakeChat(answers)
        self.stream: bool | None = None

    def options(self, *, stream: bool) -> FakeHandle:
        self.stream = stream
        return self


def response(content: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


def test_complete_sends_openai_chat_with_json_schema() -> None:
    handle = FakeHandle([response('{"1": "Привет"}')])
    backend = ServeLLMBackend(handle, model_id="qwen", request_factory=dict)
    assert isinstance(backend, LLMBackend)
    schema = {"type": "object"}
    text = backend.complete([{"role": "user", "content": "hi"}], json_schema=schema, max_tokens=50)
    assert text == '{"1": "Привет"}' and handle.stream is True
    sent = handle.chat.requests[0]
    assert sent["model"] == "qwen" and sent["max_tokens"] == 50 and sent["stream"] is False
    assert sent["response_format"]["json_schema"]["schema"] == schema


def test_translator_runs_over_the_backend() -> None:
    handle = FakeHandle([response('{"1": "Доброе утро.", "2": "Спасибо."}')])
    translator = LLMTranslator(TranslatorSettings(), ServeLLMBackend(handle, model_id="m", request_factory=dict))
    out = translator.translate_texts(["Good morning.", "Thank you."], "en", "ru")
    assert out == ["Доброе утро.", "Спасибо."]


def test_errors() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        answer_text({"error": {"message": "boom"}})

    class DeadHandle(FakeHandle):
        def options(self, *, stream: bool) -> Any:
            class DeploymentUnavailableError(Exception):
                pass

            raise DeploymentUnavailableError("gone")

    with pytest.raises(BackendUnavailable):
        ServeLLMBackend(DeadHandle([]), model_id="m", request_factory=dict).complete([{"role": "user", "content": "x"}])
