"""llama-cpp-python's OpenAI-compatible server, behind the same CPU guard as the in-process backend.

    python -m pipelines.backends.llama_server --model bundled:qwen2.5-coder-1.5b-instruct --port 8001 [...]

Every option is llama-cpp-python's own (``python -m llama_cpp.server --help``); ``--model`` may also name a
bundled model. Before the server loads the model, :func:`pipelines.backends.llama_cpu.probe` checks the
build against this CPU, and the model is loaded with the extra buffer types as ``VT_TRANSLATOR__EXTRA_BUFFERS``
says (``auto`` by default: off only where ggml's AMX path would crash). Plain ``python -m llama_cpp.server``
has neither guard. Bad input: one ``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import logging
import runpy
import sys

from pipelines.backends import llama_cpu
from pipelines.errors import BackendUnavailable, ModelError
from pipelines.models import BUNDLED_PREFIX, resolve

logger = logging.getLogger(__name__)


def _resolve_model_arg(argv: list[str], models_dir: str) -> list[str]:
    """Replace a ``bundled:<name>`` value of ``--model`` by the assembled file's path."""
    from pathlib import Path

    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--model" and i + 1 < len(out) and out[i + 1].startswith(BUNDLED_PREFIX):
            out[i + 1] = resolve(out[i + 1], Path(models_dir))
        elif arg.startswith("--model=" + BUNDLED_PREFIX):
            out[i] = "--model=" + resolve(arg.split("=", 1)[1], Path(models_dir))
    return out


def main(argv: list[str] | None = None) -> int:
    from configs.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    args = sys.argv[1:] if argv is None else argv
    try:
        args = _resolve_model_arg(args, str(settings.storage.models_dir))
        build = llama_cpu.probe()
    except (BackendUnavailable, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setting = settings.translator.extra_buffers  # VT_TRANSLATOR__EXTRA_BUFFERS
    use = build.use_extra_buffers(setting)
    logger.info("llama.cpp build: %s; extra buffer types: %s (setting %s)", build.summary(), "on" if use else "off", setting)
    sys.argv = ["llama_cpp.server", *args]
    with llama_cpu.model_params(use):
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
