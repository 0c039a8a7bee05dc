"""The GPU profile's translator path over REAL Serve deployment handles, on CPU: the stand-in for Ray Serve LLM's
``LLMServer`` (``serve_app.llm_standin``) on the session's Ray cluster, the translator deployment calling it
through ``ServeLLMBackend`` (a whole job through ``build_app`` with the GPU profile's wiring: test_serve_gpu_profile.py)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from serve_app.deployments import LLMTranslatorDeployment
from serve_app.llm import ServeLLMBackend
from serve_app.llm_standin import build_standin_llm_app
from tests.serve_app.conftest import free_port

pytestmark = [pytest.mark.ray]

MODEL_ID = "qwen2.5-7b-instruct"  # the GPU profile's model id: the stand-in answers under it
LLM_CONFIG = {"model_loading_config": {"model_id": MODEL_ID, "model_source": "Qwen/Qwen2.5-7B-Instruct"},
              "deployment_config": {"max_ongoing_requests": 8, "ray_actor_options": {"num_cpus": 0.1}}}  # fmt: skip
MESSAGES = [{"role": "system", "content": "Translate from English to Russian."},
            {"role": "user", "content": 'Translate to Russian:\n{"1": "Good morning.", "2": "Thank you."}'}]  # fmt: skip
SCHEMA = {"type": "object", "required": ["1", "2"], "properties": {"1": {"type": "string"}, "2": {"type": "string"}}}
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
SYNC_ON_LOOP = {"runtime_env": {"env_vars": {"RAY_SERVE_RUN_SYNC_IN_THREADPOOL": "0"}}}


def request(**fields: Any) -> dict[str, Any]:
    base = {"model": MODEL_ID, "messages": MESSAGES, "max_tokens": 64, "temperature": 0.0, "stream": False,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}}  # fmt: skip
    return {**base, **fields}


@pytest.fixture(scope="module")
def serve_port(ray_cluster: None) -> Iterator[int]:
    """Serve on the session's Ray cluster with its HTTP proxy on a free port, for this module."""
    from ray import serve

    serve.shutdown()  # a Serve instance left by another module would keep its own HTTP port
    port = free_port(8000)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield port
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def llm(serve_port: int) -> Any:
    """The stand-in (deterministic engine) as its own Serve app: a real DeploymentHandle to it."""
    from ray import serve

    app, model_id = build_standin_llm_app({"llm_config": LLM_CONFIG, "standin": {"engine": "echo"}})
    assert model_id == MODEL_ID
    return serve.run(app, name="llm-standin", route_prefix=None)


async def _first(handle: Any, body: dict[str, Any]) -> Any:
    return await anext(aiter(handle.options(stream=True).chat.remote(body)))


async def _all(handle: Any, body: dict[str, Any]) -> list[Any]:
    return [item async for item in handle.options(stream=True).chat.remote(body)]


def test_standin_answers_like_llm_server_streaming_and_not(llm: Any) -> None:
    whole = asyncio.run(_first(llm, request()))
    assert whole["object"] == "chat.completion" and whole["model"] == MODEL_ID
    content = whole["choices"][0]["message"]["content"]
    answer = json.loads(content)
    assert set(answer) == {"1", "2"} and all(CYRILLIC.search(v) for v in answer.values())
    assert asyncio.run(_first(llm, request()))["choices"][0]["message"]["content"] == content  # deterministic

    batches = asyncio.run(_all(llm, request(stream=True)))
    assert len(batches) > 2 and all(isinstance(b, list) for b in batches)  # LLMServer batches SSE strings
    events = [e for batch in batches for e in batch]
    assert all(e.startswith("data: ") and e.endswith("\n\n") for e in events) and events[-1] == "data: [DONE]\n\n"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == content
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    error = asyncio.run(_first(llm, request(model="other")))
    assert error["error"]["code"] == 404 and "other" in error["error"]["message"]


def test_serve_llm_backend_over_a_real_handle(llm: Any) -> None:
    backend = ServeLLMBackend(llm, model_id=MODEL_ID)
    text = asyncio.run(backend.acomplete(MESSAGES, json_schema=SCHEMA))
    assert set(json.loads(text)) == {"1", "2"}
    assert backend.complete(MESSAGES, json_schema=SCHEMA) == text  # no loop here: it runs one of its own
    with pytest.raises(RuntimeError, match="the LLM deployment answered an error"):
        asyncio.run(ServeLLMBackend(llm, model_id="other").acomplete(MESSAGES))


class BlockingCaller:
    """What TranslatorDeployment did before: a SYNC replica method blocking on the LLM handle's generator."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def ask(self) -> str:
        first = next(iter(self.llm.options(stream=True).chat.remote(request())))
        return str(first["choices"][0]["message"]["content"])


def test_translator_deployment_awaits_the_handle_where_sync_methods_run_on_the_loop(llm: Any) -> None:
    """With RAY_SERVE_RUN_SYNC_IN_THREADPOOL=0 Serve runs sync methods on the replica's event loop: the old blocking
    call raises there, and LLMTranslatorDeployment (async, the stage in a thread, the handle awaited) works; it works
    with the thread pool (Ray 2.60's default) as well."""
    from ray import serve

    small = {"ray_actor_options": {"num_cpus": 0.05}}
    blocking = serve.deployment(BlockingCaller, name="Blocking", ray_actor_options={"num_cpus": 0.05, **SYNC_ON_LOOP})
    caller = serve.run(blocking.bind(llm), name="blocking", route_prefix=None)
    with pytest.raises(Exception, match="Sync methods should not be called from within an `asyncio` event loop"):
        caller.ask.remote().result(timeout_s=60)
    serve.delete("blocking")
    threaded = serve.run(blocking.options(ray_actor_options=small["ray_actor_options"]).bind(llm), name="blocking",
                         route_prefix=None)  # fmt: skip
    assert CYRILLIC.search(threaded.ask.remote().result(timeout_s=60))  # in a worker thread the old call got by
    serve.delete("blocking")

    for name, options in {
        "on-loop": {"num_cpus": 0.05, **SYNC_ON_LOOP},
        "threadpool": small["ray_actor_options"],
    }.items():
        deployment = serve.deployment(LLMTranslatorDeployment, name=f"Translator-{name}", ray_actor_options=options)
        translator = serve.run(deployment.bind({}, llm, llm_model_id=MODEL_ID), name=f"tr-{name}", route_prefix=None)
        out = translator.translate_texts.remote(["Good morning.", "Thank you."], "en", "ru").result(timeout_s=120)
        assert len(out) == 2 and all(CYRILLIC.search(t) for t in out), (name, out)
        serve.delete(f"tr-{name}")


def test_the_openai_app_over_http(llm: Any, serve_port: int) -> None:
    """Ray Serve LLM's OpenAI app surface (``/v1/models``, ``/v1/chat/completions``, streamed or not) in front of the
    stand-in, reached by the project's own OpenAI backend and by plain HTTP."""
    import httpx
    from ray import serve

    from configs.settings import TranslatorSettings
    from pipelines.backends.openai_compat import OpenAIBackend
    from serve_app.llm_standin_openai import build_standin_openai_app

    app = build_standin_openai_app({"llm_config": LLM_CONFIG, "standin": {"engine": "echo"}})
    serve.run(app, name="llm-openai", route_prefix="/standin")
    base = f"http://127.0.0.1:{serve_port}/standin/v1"
    try:
        assert httpx.get(f"{base}/models", timeout=30).json()["data"][0]["id"] == MODEL_ID
        backend = OpenAIBackend(TranslatorSettings(backend="openai", base_url=base, model=MODEL_ID))
        answer = json.loads(backend.complete(MESSAGES, json_schema=SCHEMA, max_tokens=64))
        assert set(answer) == {"1", "2"} and all(CYRILLIC.search(v) for v in answer.values())
        with httpx.stream("POST", f"{base}/chat/completions", json=request(stream=True), timeout=30) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in r.iter_lines() if line]
        assert lines[-1] == "data: [DONE]" and len(lines) > 3
        text = "".join(json.loads(x[len("data: ") :])["choices"][0]["delta"].get("content", "") for x in lines[:-1])
        assert json.loads(text) == answer
        missing = httpx.post(f"{base}/chat/completions", json=request(model="other"), timeout=30)
        assert missing.status_code == 404 and "other" in missing.json()["error"]["message"]
    finally:
        serve.delete("llm-openai")
