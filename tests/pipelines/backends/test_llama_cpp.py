"""The in-process llama.cpp backend on the real bundled GGUF.

``test_real_translation_in_a_subprocess`` is the guard for the AMX crash: it runs first in the session (the
``guard`` marker, see tests/conftest.py) and a crash or hang stops the whole run with the reason, instead of
Ray restarting a segfaulting actor for a quarter of an hour.
"""

from __future__ import annotations

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
