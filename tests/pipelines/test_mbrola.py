"""mbrola voices (issue 14): opt-in only, a real private install from Debian, real espeak-ng + mbrola, real Whisper."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.tts_cer import cer
from configs.settings import ASRSettings, StorageSettings, TTSSettings
from pipelines import mbrola, voices
from pipelines.errors import ModelError
from pipelines.media import write_wav
from pipelines.schema import Translation
from pipelines.tts import TTSStage

MODELS_DIR = StorageSettings().models_dir


@pytest.fixture(scope="module")
def de2() -> str:
    """mbrola:de2 installed on purpose, as `voices pull --opt-in mbrola:de2` does (a no-op when already there)."""
    assert voices.pull(MODELS_DIR, opt_in=["mbrola:de2"]) == ["mbrola:de2"]
    return "mbrola:de2"


def test_an_opt_in_voice_is_refused_until_installed_on_purpose(tmp_path: Path) -> None:
    for check in (
        lambda: voices.check_voice("mbrola:de2", tmp_path),
        lambda: TTSStage(TTSSettings(voices={"de": "mbrola:de2"}), tmp_path).voice_for("de"),
        lambda: mbrola.synthesizer("de2", tmp_path),
    ):
        with pytest.raises(ModelError, match=r"not installed; run `videotranslator voices pull --opt-in mbrola:de2`"):
            check()
    # The default set and a language's set never install an opt-in voice.
    assert not [v for v in voices.CATALOG.values() if v.opt_in and v.default_eligible]
    assert all(v.engine == "mbrola" and not v.commercial_ok for v in voices.CATALOG.values() if v.opt_in)
    assert "sold" in voices.CATALOG["mbrola:de2"].licence


def test_mbrola_speaks_german_from_the_private_tree(de2: str, tmp_path: Path) -> None:
    from pipelines.asr import WhisperASR

    assert not Path("/usr/share/mbrola/de2").exists()  # nothing installed system-wide: only the models folder
    assert (mbrola.root(MODELS_DIR) / "voices" / "de2.copyright").is_file()  # the licence travels with the voice
    text = "Guten Morgen! Der Zug nach Berlin fährt heute um zwölf Uhr ab."
    stage = TTSStage(TTSSettings(voices={"de": de2}), MODELS_DIR)
    assert stage.voice_for("de") == de2
    [clip] = stage([Translation(0, "x", text)], "de")
    assert stage.synthesizer(de2).name == "mbrola:de2"
    assert clip.sample_rate_hz == 16000 and 2.0 < clip.duration_s < 9.0
    assert float(np.sqrt(np.mean(np.square(clip.samples, dtype=np.float64)))) > 0.02
    write_wav(tmp_path / "de.wav", clip.samples, clip.sample_rate_hz)
    heard = " ".join(s.text for s in WhisperASR(ASRSettings(), MODELS_DIR)(tmp_path / "de.wav", language="de").segments)
    assert "berlin" in heard.lower() and cer(text, heard) < 0.15, heard


def test_an_opt_in_voice_is_never_a_default_even_when_best(de2: str, monkeypatch: pytest.MonkeyPatch) -> None:
    best = replace(voices.CATALOG["mbrola:de2"], cer=0.0, speed_x=1e9)
    monkeypatch.setitem(voices.CATALOG, "mbrola:de2", best)
    assert voices.is_installed(best, MODELS_DIR)
    default = voices.default_voice("de", MODELS_DIR)  # a Kokoro voice once installed, else espeak-ng
    assert default != "mbrola:de2" and (default is None or voices.CATALOG[default].default_eligible)
    assert TTSStage(TTSSettings(voices={}), MODELS_DIR).voice_for("de") == (default or "espeak:de")
    rows = {r["id"]: r for r in voices.list_voices(MODELS_DIR, "de")}
    assert rows["mbrola:de2"]["opt_in"] and not rows["mbrola:de2"]["default"]
    assert sum(bool(r["default"]) for r in rows.values()) == 1


def test_voices_cli_labels_and_pulls_opt_in_voices(de2: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from videotranslator.cli import app

    listed = CliRunner().invoke(app, ["voices", "list", "--lang", "de"])
    assert listed.exit_code == 0, listed.output
    [line] = [ln for ln in listed.output.splitlines() if "mbrola:de2" in ln]
    assert line.startswith("installed") and "opt-in (voices pull --opt-in mbrola:de2)" in line and "sold" in line
    [fr4] = [ln for ln in listed.output.splitlines() if "mbrola:fr4" in ln] or [""]
    assert not fr4  # French voices are not listed for German

    def no_download(*_: object) -> None:
        raise AssertionError("an installed voice must not be downloaded again")

    monkeypatch.setattr(mbrola, "download", no_download)
    again = CliRunner().invoke(app, ["voices", "pull", "--opt-in", "mbrola:de2"])
    assert again.exit_code == 0 and "mbrola:de2" in again.output and "opt-in" in again.output, again.output
    bad = CliRunner().invoke(app, ["voices", "pull", "--opt-in", "rhvoice:irina"])
    assert bad.exit_code != 0 and "unknown opt-in voice 'rhvoice:irina'" in bad.output
    assert "Traceback" not in bad.output


def test_the_install_is_checksummed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    version, _ = mbrola.DEBS["mbrola"]
    monkeypatch.setitem(mbrola.DEBS, "mbrola", (version, "0" * 64))
    with pytest.raises(ModelError, match="checksum mismatch for mbrola"):
        mbrola.download(["mbrola"], tmp_path)
    assert not list((mbrola.root(tmp_path) / ".apt" / "debs").glob("*.deb"))  # nothing unverified is kept
    assert not voices.is_installed(voices.CATALOG["mbrola:de2"], tmp_path)


def test_cli_refuses_an_uninstalled_opt_in_voice_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.videotranslator.test_cli import run_cli

    monkeypatch.setenv("VT_STORAGE__MODELS_DIR", str(tmp_path / "models"))
    out = tmp_path / "out"
    proc = run_cli(
        "translate", str(tmp_path / "never-read.mp4"), "--to", "de", "--voice", "de=mbrola:de2", "-o", str(out)
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert "voices pull --opt-in mbrola:de2" in lines[0] and not out.exists()
