"""The OpenAI-compatible backend: a dead server is a clear error; a real llama.cpp server translates."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from configs.settings import StorageSettings, TranslatorSettings
from pipelines.backends import make_backend
from pipelines.backends.openai_compat import OpenAIBackend
from pipelines.errors import BackendUnavailable, ModelError, TranslationFailed
from pipelines.languages import script_ratio
from pipelines.models import resolve
from pipelines.schema import Sentence
from pipelines.translate import LLMTranslator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_make_backend_openai_is_lazy_about_the_network() -> None:
    backend = make_backend(
        TranslatorSettings(backend="openai", model="bundled:qwen2.5-coder-1.5b-instruct"), Path("/nonexistent")
    )
    assert isinstance(backend, OpenAIBackend)
    assert backend.name == "openai:qwen2.5-coder-1.5b-instruct@http://127.0.0.1:8001/v1"


def test_dead_server_gives_translation_failed_quickly() -> None:
    settings = TranslatorSettings(backend="openai", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=2.0)
    backend = OpenAIBackend(settings, attempts=2, retry_wait_s=0.01)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="unreachable after 2 attempts"):
        backend.complete([{"role": "user", "content": "hi"}], json_schema={"type": "object"})
    sentences = [Sentence(id=i, start_s=0.0, end_s=1.0, text=f"Line {i} is here.") for i in range(5)]
    with pytest.raises(TranslationFailed, match="is unavailable"):
        LLMTranslator(settings, backend).translate(sentences, source_language="en", target_language="ru")
    assert time.monotonic() - started < 10


_SERVER_LOGS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OpenAI-compatible server: llama-cpp-python's behind the project's CPU guard
    (``python -m pipelines.backends.llama_server``), on the bundled GGUF. Yields base_url."""
    pytest.importorskip("llama_cpp.server.app", exc_type=ImportError)
    try:
        model = resolve("bundled:qwen2.5-coder-1.5b-instruct", StorageSettings().models_dir)
    except ModelError as exc:
        pytest.skip(f"bundled translator model unavailable: {exc}")
    port = free_port()
    log = (tmp_path_factory.mktemp("llama_server") / "server.log").open("wb")
    cmd = [sys.executable, "-m", "pipelines.backends.llama_server", "--model", model, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--n_ctx", "2048", "--n_threads", str(os.cpu_count() or 1), "--verbose", "False"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    _SERVER_LOGS[base_url] = Path(log.name)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base_url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"llama.cpp server did not start; see {log.name}")
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
def test_real_server_translates_english_to_russian(llama_server: str) -> None:
    settings = TranslatorSettings(backend="openai", base_url=llama_server, model="qwen", timeout_s=60.0)
    translator = LLMTranslator(settings, make_backend(settings, Path("/nonexistent")))
    sentences = [
        Sentence(id=0, start_s=0.0, end_s=1.0, text="This is a test."),
        Sentence(id=1, start_s=1.0, end_s=3.0, text="I will call you tomorrow morning."),
    ]
    result = translator.translate(sentences, source_language="en", target_language="ru")
    print("openai en->ru:", [t.text for t in result])
    assert [t.id for t in result] == [0, 1]
    assert all(not t.flags and (script_ratio(t.text, "ru") or 0.0) >= 0.8 for t in result)


def test_llama_server_refuses_an_unknown_bundled_model_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.backends.llama_server", "--model", "bundled:no-such-model"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown bundled model 'no-such-model'")
    assert "Traceback" not in proc.stderr


def test_llama_server_logs_the_build_and_its_extra_buffer_choice(llama_server: str) -> None:
    """The guard ran before the model loaded: the server's log names the build's features and the choice."""
    log = _SERVER_LOGS[llama_server]
    text = log.read_text(errors="replace")
    assert "llama.cpp build: CPU:" in text
    assert "extra buffer types: on (setting auto)" in text
