"""The in-process llama.cpp backend on the real bundled GGUF.

``test_real_translation_in_a_subprocess`` is the guard for the AMX crash: it runs first in the session (the
``guard`` marker, see tests/conftest.py) and a crash or hang stops the whole run with the reason, instead of
Ray restarting a segfaulting actor for a quarter of an hour.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import textwrap

import pytest

from configs.settings import StorageSettings, TranslatorSettings
from pipelines.backends.llama_cpp import LlamaCppBackend
from pipelines.languages import script_ratio

GUARD_TIMEOUT_S = 300

_TRANSLATE = textwrap.dedent(
    """
    import sys
    from configs.settings import StorageSettings, TranslatorSettings
    from pipelines.schema import Sentence
    from pipelines.translate import make_translator

    translator = make_translator(TranslatorSettings(backend="llama_cpp"), StorageSettings().models_dir)
    sentences = [Sentence(id=0, start_s=0.0, end_s=2.0, text="Good morning, my friends."),
                 Sentence(id=1, start_s=2.0, end_s=4.0, text="The weather is very nice today.")]
    for t in translator.translate(sentences, source_language="en", target_language="ru"):
        sys.stdout.write(t.text + "\\n")
    """
)


@pytest.mark.guard
def test_real_translation_in_a_subprocess() -> None:
    """The bundled model translates en->ru in a child process: no crash, no hang, Cyrillic out."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _TRANSLATE], capture_output=True, text=True, timeout=GUARD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.exit(f"the real llama.cpp translation hung for {GUARD_TIMEOUT_S} s; stopping the test run", returncode=3)
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        pytest.exit(
            f"the real llama.cpp translation died with {name} (the AMX crash, or a wheel built for another CPU); "
            f"stopping the test run. stderr tail:\n{proc.stderr[-2000:]}",
            returncode=3,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2, proc.stdout
    for line in lines:
        ratio = script_ratio(line, "ru")
        assert ratio is not None and ratio > 0.8, f"not Russian: {line!r}"


@pytest.mark.slow
@pytest.mark.parametrize("setting, expected", [("off", False), ("on", True)])
def test_backend_loads_with_the_extra_buffer_setting(setting: str, expected: bool) -> None:
    backend = LlamaCppBackend(TranslatorSettings(backend="llama_cpp", extra_buffers=setting, n_ctx=512),
                              StorageSettings().models_dir)
    assert backend._llm.model_params.use_extra_bufts is expected
    out = backend.complete([{"role": "user", "content": "Say OK."}], max_tokens=4)
    assert out.strip()


def test_auto_keeps_extra_buffers_on_a_build_without_amx_kernels() -> None:
    """This project's build has no AMX kernels (``make llama``), so ``auto`` keeps the faster CPU repack."""
    from pipelines.backends.llama_cpu import probe

    build = probe()
    assert not build.has_amx_kernels, f"the installed llama.cpp build has AMX kernels: {build.summary()}"
    assert build.use_extra_buffers("auto") is True


# ----------------------------------------------------------------------------- prompt reuse (issue 17)

_SYSTEM = (
    "You are a professional subtitle translator. Translate from English to Russian.\n"
    "- Write every line in Russian; never copy the English text.\n- Keep names and numbers.\n"
    "- Output only JSON: the same keys, each with its Russian translation."
)


def _ask(text: str, system: str = _SYSTEM) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": f'Translate to Russian:\n{{"1": "{text}"}}'}]


@pytest.fixture(scope="module")
def backend() -> LlamaCppBackend:
    return LlamaCppBackend(TranslatorSettings(backend="llama_cpp", n_ctx=1024, n_batch=64, prompt_cache_mb=64),
                           StorageSettings().models_dir)


@pytest.mark.slow
def test_settings_reach_llama(backend: LlamaCppBackend) -> None:
    assert backend._llm.n_batch == 64
    assert backend.states.capacity_bytes == 64 * 1024 * 1024


@pytest.mark.slow
def test_second_request_evaluates_only_what_differs(backend: LlamaCppBackend) -> None:
    """The system prompt's KV state is kept: llama.cpp's own counter shows the second prompt evaluated in part."""
    backend.complete(_ask("Good morning."), max_tokens=8)
    before = dataclasses.replace(backend.stats)
    backend.complete(_ask("The weather is nice today."), max_tokens=8)
    sent = backend.stats.prompt_tokens - before.prompt_tokens
    evaluated = backend.stats.evaluated_tokens - before.evaluated_tokens
    reused = backend.stats.reused_tokens - before.reused_tokens
    system_tokens = len(backend._llm.tokenize(_SYSTEM.encode(), add_bos=False))
    assert reused >= system_tokens
    assert 0 < evaluated <= sent - system_tokens


@pytest.mark.slow
def test_a_saved_state_brings_back_a_prefix_after_another_prompt(backend: LlamaCppBackend) -> None:
    """A prompt with another system prompt in between (the name request) does not cost the shared prefix."""
    backend.complete(_ask("Good morning."), max_tokens=8)
    backend.complete(_ask("Good morning.", system="List the names in the text as JSON."), max_tokens=8)
    before = dataclasses.replace(backend.stats)
    backend.complete(_ask("See you tomorrow."), max_tokens=8)
    assert backend.stats.restored_states == before.restored_states + 1
    evaluated = backend.stats.evaluated_tokens - before.evaluated_tokens
    system_tokens = len(backend._llm.tokenize(_SYSTEM.encode(), add_bos=False))
    assert evaluated <= backend.stats.prompt_tokens - before.prompt_tokens - system_tokens


@pytest.mark.slow
def test_translations_are_the_same_with_the_prompt_cache_on_and_off() -> None:
    """Greedy decoding from a reused or restored KV state gives the same words as from a fresh evaluation.

    Two jobs on one backend, as in a service worker, with a ``shorten`` request (another system prompt) between
    them: with the cache on, the second job starts from the first job's saved state."""
    from pipelines.schema import Sentence
    from pipelines.translate import LLMTranslator

    jobs = [["Good morning, everyone.", "It did not rain yesterday."], ["See you next week."]]
    outputs = []
    for cache_mb in (0, 64):
        settings = TranslatorSettings(backend="llama_cpp", n_ctx=1024, batch_size=1, name_glossary=False,
                                      prompt_cache_mb=cache_mb)
        llm_backend = LlamaCppBackend(settings, StorageSettings().models_dir)
        translator = LLMTranslator(settings, llm_backend)
        for n, texts in enumerate(jobs):
            if n:
                translator.shorten("Доброе утро всем, кто пришёл сегодня.", target_language="ru", max_chars=20)
            sentences = [Sentence(id=i, start_s=2.0 * i, end_s=2.0 * i + 1.5, text=t) for i, t in enumerate(texts)]
            result = translator.translate(sentences, source_language="en", target_language="ru")
            outputs.append((cache_mb, [t.text for t in result]))
        assert llm_backend.stats.reused_tokens > 0
        assert (llm_backend.stats.restored_states > 0) is (cache_mb > 0)
        del translator, llm_backend
    assert [o for mb, o in outputs if mb == 0] == [o for mb, o in outputs if mb > 0]
