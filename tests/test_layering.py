"""Architecture rules: pipelines imports without Ray; configs imports nothing of ours."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(out.stdout.split())


def test_pipelines_imports_without_ray() -> None:
    mods = _modules_after(
        "import pipelines, pipelines.runner, pipelines.asr, pipelines.translate, pipelines.tts, "
        "pipelines.segment, pipelines.cues, pipelines.mux, pipelines.mix, pipelines.fit, pipelines.media, pipelines.models"
    )
    assert "pipelines.runner" in mods
    assert not {m for m in mods if m == "ray" or m.startswith("ray.")}
    assert "fastapi" not in mods and "serve_app" not in mods


def test_configs_imports_nothing_of_ours() -> None:
    mods = _modules_after("import configs, configs.logging")
    assert "configs.settings" in mods
    assert not {m for m in mods if m.split(".")[0] in {"pipelines", "serve_app", "videotranslator"}}
