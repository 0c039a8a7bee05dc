"""``translate --background`` (issue 15): a dub over the separated background without the separation model is one
line and a non-zero exit before any work (no output, no stage run); a bad value too."""

from __future__ import annotations

from pathlib import Path

from tests.videotranslator.test_cli_inputs import cli, one_error_line


def test_separation_without_its_model_is_one_line_before_any_work(jfk_flac: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    env = {"VT_STORAGE__MODELS_DIR": str(tmp_path / "no-models"), "VT_STORAGE__CACHE_DIR": str(cache)}
    line = one_error_line(
        cli("translate", str(jfk_flac), "--to", "en", "--background", "separate", "-o", str(out), **env)
    )
    assert "models pull spleeter-2stems" in line
    line = one_error_line(
        cli("translate", str(jfk_flac), "--to", "en", "-o", str(out), **env, VT_MIX__BACKGROUND="separate")
    )
    assert "models pull spleeter-2stems" in line
    assert not out.exists() or not any(out.iterdir())
    assert not cache.exists() or not any(cache.iterdir())  # not even the audio was extracted
    line = one_error_line(cli("translate", str(jfk_flac), "--to", "en", "--background", "loud", "-o", str(out)))
    assert "background" in line
