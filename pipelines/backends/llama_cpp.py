"""In-process llama.cpp (llama-cpp-python) backend: the CPU default with the bundled GGUF.

Prompt reuse (issue 17). ``Llama.generate`` keeps the KV cache of the longest common prefix of the previous
prompt and the new one and evaluates only the rest, so the translator's prompts put what every request shares
first (system prompt, few-shot example) and what changes last. That covers consecutive requests of one kind;
a request with another prefix in between (the job's name request, a retry without the example, ``shorten``,
the next job's names) would throw the shared prefix away. :class:`PrefixStates` keeps the KV state of recent
prompts (llama.cpp's per-sequence state, a few MB each) and puts back the one that shares the longest prefix
with the next prompt, when that beats what is in the KV cache. llama-cpp-python's own ``LlamaRAMCache`` is not
used: its ``save_state`` also copies ``n_batch`` rows of logits (512 x 151,936 floats, 311 MB for Qwen) per
request. :attr:`LlamaCppBackend.stats` counts the prompt tokens sent, reused and evaluated.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.backends import Message
from pipelines.backends.llama_cpu import load_llama
from pipelines.errors import BackendUnavailable, ModelError
from pipelines.models import resolve

if TYPE_CHECKING:
    from configs.settings import TranslatorSettings

logger = logging.getLogger(__name__)

_MIN_RESTORE_GAIN = 16  # tokens a saved state must add over the KV cache's own prefix to be worth putting back


def _is_local(model: str) -> bool:
    return model.endswith(".gguf") or Path(model).exists()


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """The number of leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass
class LlamaStats:
    """Counters over a backend's life (``complete`` calls); the prompt figures are llama.cpp's own."""

    requests: int = 0
    prompt_tokens: int = 0
    """Tokens of the prompts sent."""
    reused_tokens: int = 0
    """Of those, tokens whose KV state was already there (the KV cache's prefix, or a saved state)."""
    evaluated_tokens: int = 0
    """Prompt tokens llama.cpp evaluated (its perf counter ``n_p_eval``)."""
    generated_tokens: int = 0
    restored_states: int = 0
    """Prompts that started from a saved state (:class:`PrefixStates`)."""
    prompt_s: float = 0.0
    generate_s: float = 0.0


class PrefixStates:
    """Saved KV states of sequence 0, keyed by their tokens; least recently used first out past ``capacity_bytes``."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._states: OrderedDict[tuple[int, ...], bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    @property
    def size_bytes(self) -> int:
        return sum(len(s) for s in self._states.values())

    def best(self, tokens: Sequence[int]) -> tuple[tuple[int, ...], int]:
        """The saved key sharing the longest prefix with ``tokens``, and that length (``((), 0)`` if none)."""
        found: tuple[tuple[int, ...], int] = ((), 0)
        for key in self._states:
            n = common_prefix(key, tokens)
            if n > found[1]:
                found = (key, n)
        return found

    def save(self, llm: Any) -> None:
        import llama_cpp

        key = tuple(int(t) for t in llm.input_ids[: llm.n_tokens])
        if not key or self.capacity_bytes <= 0:
            return
        size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(llm.ctx, buf, size, 0)
        self._states.pop(key, None)
        self._states[key] = bytes(buf[:written])
        while self.size_bytes > self.capacity_bytes and self._states:
            self._states.popitem(last=False)

    def restore(self, llm: Any, key: tuple[int, ...]) -> bool:
        """Put the state saved under ``key`` into the context; False (context left empty) if llama.cpp refuses it."""
        import llama_cpp

        data = self._states[key]
        self._states.move_to_end(key)
        llm._ctx.kv_cache_seq_rm(0, 0, -1)
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_seq_set_data(llm.ctx, buf, len(data), 0) != len(data):
            llm._ctx.kv_cache_seq_rm(0, 0, -1)
            llm.n_tokens = 0
            return False
        llm.input_ids[: len(key)] = key
        llm.n_tokens = len(key)
        llm._requires_eval = True  # the logits of the restored state are not there: generate re-evaluates a token
        return True


class LlamaCppBackend:
    """A GGUF model loaded once; ``complete`` is serialised because a ``Llama`` is not thread-safe.

    The model setting is ``bundled:<name>``, a ``.gguf`` path or a Hugging Face repo id (then
    ``settings.gguf_file`` picks the file, downloaded by llama-cpp-python).
    """

    def __init__(self, settings: TranslatorSettings, models_dir: Path) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise BackendUnavailable("llama-cpp-python is not installed; run `make llama` (or pip install it)")
        model = resolve(settings.model, models_dir)
        options: dict[str, Any] = {
            "n_ctx": settings.n_ctx,
            "n_threads": settings.n_threads or os.cpu_count() or 1,
            "n_batch": settings.n_batch,
            "verbose": False,
        }
        try:
            if _is_local(model):
                if not Path(model).is_file():
                    raise ModelError(f"GGUF file not found: {model}")
                self._llm = load_llama(settings.extra_buffers, model_path=model, **options)
            else:
                self._llm = load_llama(settings.extra_buffers, repo_id=model, filename=settings.gguf_file, **options)
        except (ModelError, BackendUnavailable):
            raise
        except Exception as exc:  # llama-cpp raises ValueError/RuntimeError/HF errors on a bad model
            raise ModelError(f"cannot load GGUF model {model!r}: {exc}") from exc
        self._temperature = settings.temperature
        self._lock = threading.Lock()
        self.stats = LlamaStats()
        self.states = PrefixStates(settings.prompt_cache_mb * 1024 * 1024)
        self._generate = self._llm.generate
        self._llm.generate = self._generate_from_best_prefix  # create_completion looks it up on the instance
        self.name = f"llama_cpp:{Path(model).name if _is_local(model) else model}"
        logger.info("loaded %s (n_ctx=%d, n_threads=%d, n_batch=%d, prompt cache %d MB)", self.name,
                    options["n_ctx"], options["n_threads"], options["n_batch"], settings.prompt_cache_mb)

    def complete(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        """Chat completion; ``json_schema`` becomes a grammar, so the output always parses as it."""
        import llama_cpp

        response_format = {"type": "json_object", "schema": json_schema} if json_schema is not None else None
        with self._lock:
            llama_cpp.llama_perf_context_reset(self._llm.ctx)
            out: Any = self._llm.create_chat_completion(
                messages=messages,
                response_format=response_format,
                max_tokens=max_tokens,
                temperature=self._temperature,
            )
            perf = llama_cpp.llama_perf_context(self._llm.ctx)
            self.stats.requests += 1
            self.stats.evaluated_tokens += int(perf.n_p_eval)
            self.stats.generated_tokens += int(perf.n_eval)
            self.stats.prompt_s += perf.t_p_eval_ms / 1000
            self.stats.generate_s += perf.t_eval_ms / 1000
            if self.states.capacity_bytes > 0:
                self.states.save(self._llm)
        return str(out["choices"][0]["message"].get("content") or "")

    def _generate_from_best_prefix(self, tokens: Sequence[int], **kwargs: Any) -> Iterator[int]:
        """``Llama.generate``, started from the saved state that shares most of ``tokens`` when that beats the
        KV cache's own prefix; counts the prompt tokens and the reused ones."""
        llm = self._llm
        tokens = list(tokens)
        reused = common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        key, saved = self.states.best(tokens)
        if saved >= reused + _MIN_RESTORE_GAIN and self.states.restore(llm, key):
            self.stats.restored_states += 1
            reused = saved
        self.stats.prompt_tokens += len(tokens)
        self.stats.reused_tokens += min(reused, len(tokens) - 1)  # the last prompt token is always evaluated
        return self._generate(tokens, **kwargs)  # type: ignore[no-any-return]
