"""``StandInLLMServer``: a CPU stand-in for Ray Serve LLM's ``LLMServer`` (the vLLM deployment of the GPU profile).

It speaks the same handle interface, so ``ServeLLMBackend`` and ``TranslatorDeployment`` run unchanged over real
deployment handles on a machine without a GPU or vLLM:

* ``chat(request, raw_request_info=None)``: an async generator, called as
  ``handle.options(stream=True).chat.remote(request)``. Without ``request.stream`` it yields ONE
  ChatCompletionResponse (``{"id", "object": "chat.completion", "model", "choices": [...], "usage"}``); with
  it, lists of server-sent-event strings (``"data: {chunk}\\n\\n"``, chunks of ``chat.completion.chunk``), the
  last ending in ``"data: [DONE]\\n\\n"``, as LLMServer batches them. A request for another model yields an
  ErrorResponse (``{"error": {"message", "type", "code": 404}}``).
* ``llm_config()``, ``check_health()``: as LLMServer.

The request may be ray.serve.llm's ``ChatCompletionRequest`` or a dict with the same fields. ``engine`` picks
who answers: ``"llama_cpp"`` (the translator's llama.cpp backend with ``translator`` settings, the bundled GGUF
by default) or ``"echo"`` (deterministic, no model: see ``echo_answer``). In a profile:
``args.llm.standin: {engine: llama_cpp|echo, translator: {...}}`` next to ``llm_config``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from serve_app.llm import _field

ENGINES = ("llama_cpp", "echo")
STREAM_PIECE_CHARS = 8  # characters per streamed delta: several chunks even for a short answer

_TRANSLIT = dict(zip("abcdefghijklmnopqrstuvwxyz", "абкдефгхижклмнопкрстуввхыз", strict=True))
_CYRILLIC_TARGETS = frozenset({"ru", "uk", "be", "bg", "sr", "mk", "kk", "ky", "mn", "tg"})
_TARGET = re.compile(r"Translate (?:from \S+ )?to ([A-Za-z]+)")
_LANG_NAMES = {"russian": "ru", "ukrainian": "uk", "belarusian": "be", "bulgarian": "bg", "serbian": "sr"}


def _cyrillic(text: str) -> str:
    return "".join(_TRANSLIT.get(c.lower(), c).upper() if c.isupper() else _TRANSLIT.get(c, c) for c in text)


def _reversed_words(text: str) -> str:
    return re.sub(r"[A-Za-z]+", lambda m: m.group(0)[::-1], text)


def echo_answer(messages: Sequence[Mapping[str, Any]], json_schema: Mapping[str, Any] | None) -> str:
    """The deterministic engine: the last ``{...}`` JSON object of the last user message, each value rendered
    in the target language's script (Latin letters transliterated to Cyrillic for a Cyrillic target, else each
    word reversed), answered with the keys ``json_schema`` requires. Not a translation: a stand-in that passes
    the translator's checks and is the same every time."""
    user = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    system = next((str(m.get("content") or "") for m in messages if m.get("role") == "system"), "")
    target = _TARGET.search(user) or _TARGET.search(system)
    name = target.group(1).lower() if target else ""
    render = _cyrillic if _LANG_NAMES.get(name, name) in _CYRILLIC_TARGETS else _reversed_words
    lines: dict[str, Any] = {}
    start = user.rfind("\n{")
    if start >= 0:
        try:
            lines = json.loads(user[start + 1 : user.rfind("}") + 1])
        except ValueError:
            lines = {}
    keys = list((json_schema or {}).get("required") or lines)
    if json_schema is None:
        return render(user)
    return json.dumps({k: render(str(lines.get(k, k))) for k in keys}, ensure_ascii=False)


def _schema(request: Any) -> dict[str, Any] | None:
    fmt = _field(request, "response_format")
    if not fmt:
        return None
    inner = _field(fmt, "json_schema")
    schema = _field(inner, "schema") if inner is not None else _field(fmt, "schema")
    if schema is not None and not isinstance(schema, dict):
        schema = getattr(schema, "model_dump", lambda: dict(schema))()
    return dict(schema) if schema is not None else None


def _messages(request: Any) -> list[dict[str, Any]]:
    out = []
    for m in _field(request, "messages") or []:
        out.append({"role": _field(m, "role"), "content": _field(m, "content")})
    return out


class StandInLLMServer:
    """LLMServer's handle interface on CPU (see the module docstring). Plain class: ``build_standin_llm_app``
    wraps it with ``serve.deployment``; ``backend`` may be injected (an ``LLMBackend``) in place of ``engine``."""

    def __init__(
        self,
        llm_config: Mapping[str, Any],
        *,
        engine: str = "echo",
        translator: Mapping[str, Any] | None = None,
        models_dir: str | None = None,
        backend: Any = None,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"llm.standin.engine must be one of {list(ENGINES)}, got {engine!r}")
        self._config = dict(llm_config)
        self.model_id = str(self._config["model_loading_config"]["model_id"])
        self.engine = engine
        if backend is None and engine == "llama_cpp":
            from configs.settings import Settings, TranslatorSettings
            from pipelines.backends.llama_cpp import LlamaCppBackend

            settings = TranslatorSettings(**dict(translator or {}))
            backend = LlamaCppBackend(settings, Path(models_dir) if models_dir else Settings().storage.models_dir)
        self.backend = backend

    async def llm_config(self) -> dict[str, Any]:
        return dict(self._config)

    async def check_health(self) -> None:
        return None

    async def _answer(self, request: Any) -> str:
        messages = _messages(request)
        schema = _schema(request)
        max_tokens = int(_field(request, "max_tokens") or 1024)
        if self.backend is None:
            return echo_answer(messages, schema)
        # The backend blocks (llama.cpp): a worker thread, so this replica's event loop keeps serving.
        return str(await asyncio.to_thread(self.backend.complete, messages, json_schema=schema, max_tokens=max_tokens))

    async def chat(self, request: Any, raw_request_info: Any = None) -> AsyncIterator[Any]:
        """One ChatCompletionResponse (dict), or lists of SSE strings when ``request.stream``; see the module."""
        model = _field(request, "model")
        if model != self.model_id:
            yield {"error": {"message": f"model {model!r} is not served here ({self.model_id!r} is)",
                             "type": "NotFoundError", "code": 404}}  # fmt: skip
            return
        content = await self._answer(request)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not _field(request, "stream"):
            yield {
                "id": rid, "object": "chat.completion", "created": created, "model": self.model_id,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": len(content.split()), "total_tokens": len(content.split())},
            }  # fmt: skip
            return

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": self.model_id,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        yield [chunk({"role": "assistant", "content": ""})]
        pieces = [content[i : i + STREAM_PIECE_CHARS] for i in range(0, len(content), STREAM_PIECE_CHARS)]
        for start in range(0, len(pieces), 2):  # two deltas per batch, as LLMServer's Batcher groups them
            yield [chunk({"content": p}) for p in pieces[start : start + 2]]
        yield [chunk({}, "stop"), "data: [DONE]\n\n"]


def build_standin_llm_app(llm_args: Mapping[str, Any]) -> tuple[Any, str]:
    """An ``LLMBuilder``: the stand-in as a Serve deployment named like Ray Serve LLM's (``LLM:<model_id>``),
    with ``llm_config.deployment_config``'s Serve options, and its model id."""
    from ray import serve

    config = dict(llm_args["llm_config"])
    model_id = str(config["model_loading_config"]["model_id"])
    standin = dict(llm_args.get("standin") or {})
    unknown = set(standin) - {"engine", "translator", "models_dir"}
    if unknown or standin.get("engine", "echo") not in ENGINES:  # at build time, not in a replica that Serve retries
        raise ValueError(
            f"llm.standin takes engine ({'|'.join(ENGINES)}), translator and models_dir; got {sorted(standin.items())}"
        )
    options = {k: v for k, v in dict(config.get("deployment_config") or {}).items() if k != "name"}
    if "autoscaling_config" in options:
        options.pop("num_replicas", None)
    options.setdefault("ray_actor_options", {"num_cpus": 0.25})
    deployment: Any = serve.deployment(StandInLLMServer, name=f"LLM:{model_id}", **options)
    return deployment.bind(config, **standin), model_id
