"""ServeLLMBackend against a fake Ray Serve LLM handle (vLLM is not needed on CPU); the same backend over real
handles (the CPU stand-in) is in test_serve_llm.py."""

from __future__ import annotations

from typing import Any

import pytest

from configs.settings import TranslatorSettings
from pipelines.backends import LLMBackend
from pipelines.errors import BackendUnavailable
from pipelines.translate import LLMTranslator
from serve_app.llm import ServeLLMBackend, _field, answer_text


class FakeChat:
    def __init__(self, answers: list[Any]) -> None:
        self.answers, self.requests = answers, []  # type: ignore[var-annotated]

    def remote(self, request: dict[str, Any]) -> Any:
        self.requests.append(request)
        answer = self.answers.pop(0)

        async def stream() -> Any:  # a DeploymentResponseGenerator is iterated with ``async for``
            yield answer

        return stream()


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


def test_complete_refuses_to_block_a_running_loop_and_uses_the_bound_one() -> None:
    import asyncio
    import threading

    backend = ServeLLMBackend(FakeHandle([response("a"), response("b")]), model_id="m", request_factory=dict)

    async def on_the_loop() -> str:
        with pytest.raises(RuntimeError, match="would block the event loop"):
            backend.complete([{"role": "user", "content": "x"}])
        backend.bind_loop(asyncio.get_running_loop())
        loops: list[Any] = []

        def in_thread() -> str:
            loops.append(threading.current_thread() is threading.main_thread())
            return backend.complete([{"role": "user", "content": "x"}])

        return await asyncio.to_thread(in_thread) + str(loops)

    assert asyncio.run(on_the_loop()) == "a[False]"  # the first answer: the refused call sent nothing
    assert backend.handle.chat.answers == [response("b")]


def test_request_is_a_dict_without_ray_serve_llm() -> None:
    from serve_app.llm import _chat_request

    try:
        import ray.serve.llm.openai_api_models  # noqa: F401
    except ImportError:
        assert _chat_request(model="m", messages=[], stream=False) == {"model": "m", "messages": [], "stream": False}
    else:
        assert type(_chat_request(model="m", messages=[], stream=False)).__name__ == "ChatCompletionRequest"


def test_llm_translator_deployment_is_async_and_awaits_the_handle() -> None:
    import asyncio
    import inspect

    from serve_app.deployments import LLMTranslatorDeployment

    handle = FakeHandle([response('{"1": "Доброе утро.", "2": "Спасибо."}')])
    deployment = LLMTranslatorDeployment({}, handle, llm_model_id="qwen")
    assert all(inspect.iscoroutinefunction(getattr(deployment, m)) for m in ("translate", "shorten", "translate_texts"))
    assert deployment.name == "ray_serve_llm:qwen"  # what reports name as the translator
    out = asyncio.run(deployment.translate_texts(["Good morning.", "Thank you."], "en", "ru"))
    assert out == ["Доброе утро.", "Спасибо."]
    assert _field(handle.chat.requests[0], "model") == "qwen" and handle.stream is True
