"""``StandInOpenAIIngress``: the HTTP front of Ray Serve LLM's OpenAI app (``build_openai_app``'s ``OpenAiIngress``)
over a ``StandInLLMServer`` handle, so OpenAI clients (``pipelines.backends.openai_compat.OpenAIBackend``, the
``openai`` package, curl) reach the stand-in as they would reach vLLM behind Ray Serve LLM:

* ``GET /v1/models``: the served model id.
* ``POST /v1/chat/completions``: a ChatCompletion as JSON, or with ``"stream": true`` server-sent events
  (``data: {chunk}`` ... ``data: [DONE]``); an ErrorResponse with its ``code`` as the HTTP status.

The LLM deployment is awaited through its handle (``handle.options(stream=True).chat.remote``), as the real
ingress does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any


class StandInOpenAIIngress:
    """Plain class: ``build_standin_openai_app`` wraps it with ``serve.ingress()`` and ``serve.deployment``."""

    def __init__(self, llm: Any, model_id: str) -> None:
        self.llm, self.model_id = llm, model_id

    def __serve_build_asgi_app__(self) -> Any:
        from fastapi import Body, FastAPI
        from fastapi.responses import JSONResponse, StreamingResponse

        app = FastAPI(title="VideoTranslator LLM stand-in (OpenAI API)")

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": self.model_id, "object": "model", "owned_by": "videotranslator"}]}

        @app.post("/v1/chat/completions", response_model=None)
        async def chat(body: dict[str, Any] = Body(...)) -> Any:  # noqa: B008  (FastAPI's way to take a JSON body)
            stream = aiter(self.llm.options(stream=True).chat.remote(body))
            first = await anext(stream, None)
            if isinstance(first, Mapping) and "error" in first:
                return JSONResponse(dict(first), status_code=int(first["error"].get("code") or 400))
            if not body.get("stream"):
                return first

            async def events() -> AsyncIterator[str]:
                for event in first or []:
                    yield event
                async for batch in stream:
                    for event in batch:
                        yield event

            return StreamingResponse(events(), media_type="text/event-stream")

        return app


def build_standin_openai_app(llm_args: Mapping[str, Any]) -> Any:
    """The stand-in LLM deployment behind an OpenAI-compatible ingress: a Serve application to ``serve.run``."""
    from ray import serve

    from serve_app.llm_standin import build_standin_llm_app

    llm, model_id = build_standin_llm_app(llm_args)
    ingress: Any = serve.deployment(serve.ingress()(StandInOpenAIIngress), name="StandInOpenAIIngress",
                               ray_actor_options={"num_cpus": 0.05})  # fmt: skip
    return ingress.bind(llm, model_id)
