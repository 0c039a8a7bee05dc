from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from configs.settings import MixSettings
from pipelines.media import read_wav
from pipelines.mix import (
    atempo_chain,
    build_dub_track,
    duck_envelope,
    mix_tracks,
    render_voice,
    time_stretch,
)
from pipelines.schema import Clip, DubPlan, PlanItem

RATE = 16000


def _tone(seconds: float, rate: int = 22050, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_envelope_values() -> None:
    plan = DubPlan((PlanItem(0, 1.0, 2.0, 1.0, 0.0),))
    env = duck_envelope(plan, 3 * RATE, RATE, gain_db=-20.0, ramp_ms=100.0)
    assert env.shape == (3 * RATE,) and env.dtype == np.float32
    assert env[0] == 1.0 and env[-1] == 1.0 and env[int(0.85 * RATE)] == 1.0
    assert env[int(1.5 * RATE)] == pytest.approx(0.1, abs=1e-6)
    assert env[RATE] == pytest.approx(0.1, abs=1e-3) and env[2 * RATE - 1] == pytest.approx(0.1, abs=1e-3)
    assert env[int(0.95 * RATE)] == pytest.approx(0.55, abs=0.01)  # half-way down the ramp
    assert np.all(np.diff(env[:RATE]) <= 1e-7)  # monotone ramp down


def test_envelope_without_ramp_and_empty_plan() -> None:
    plan = DubPlan((PlanItem(0, 1.0, 2.0, 1.0, 0.0), PlanItem(1, 2.5, 2.5, 1.0, 0.0)))
    env = duck_envelope(plan, 3 * RATE, RATE, gain_db=-6.0, ramp_ms=0.0)
    assert env[RATE - 1] == 1.0 and env[RATE] == pytest.approx(10 ** (-6 / 20), abs=1e-6)
    assert env[int(2.5 * RATE)] == 1.0
    assert np.all(duck_envelope(DubPlan(), 100, RATE) == 1.0)


def test_mix_shape_and_limit() -> None:
    stereo = np.full((1000, 2), 0.5, dtype=np.float32)
    voice = np.full(1000, 0.25, dtype=np.float32)
    env = np.full(1000, 0.5, dtype=np.float32)
    mixed = mix_tracks(stereo, voice, env)
    assert mixed.shape == (1000, 2) and np.allclose(mixed, 0.5)
    assert mix_tracks(stereo[:, 0], voice, env).shape == (1000,)
    loud = mix_tracks(stereo, np.ones(1000, dtype=np.float32), np.ones(1000, dtype=np.float32))
    assert float(np.abs(loud).max()) <= 0.99 + 1e-6
    only = mix_tracks(stereo, voice, env, voice_only=True)
    assert np.allclose(only, 0.25)


def test_atempo_chain() -> None:
    assert atempo_chain(1.0) == []
    assert atempo_chain(3.0) == ["atempo=2.0", "atempo=1.500000"]
    assert atempo_chain(0.25) == ["atempo=0.5", "atempo=0.500000"]


@pytest.mark.parametrize("speed", [1.0, 1.2, 1.35, 2.5])
def test_time_stretch_duration(speed: float) -> None:
    tone = _tone(2.0)
    out = time_stretch(tone, 22050, speed, 48000)
    expected = 2.0 / speed
    assert out.dtype == np.float32
    assert abs(out.size / 48000 - expected) / expected < 0.03


def test_time_stretch_noop_returns_input() -> None:
    tone = _tone(0.5)
    assert time_stretch(tone, 22050, 1.0, 22050) is tone


def test_render_voice_places_and_cuts() -> None:
    clips = [Clip(0, _tone(1.0, RATE), RATE), Clip(1, _tone(1.0, RATE), RATE)]
    plan = DubPlan((PlanItem(0, 0.5, 1.5, 1.0, 0.0), PlanItem(1, 2.5, 3.5, 1.0, 0.5)))
    voice = render_voice(plan, clips, sample_rate_hz=RATE, duration_s=3.0)
    assert voice.shape == (3 * RATE,)
    assert np.all(voice[: int(0.5 * RATE)] == 0) and np.abs(voice[int(0.6 * RATE) : int(1.4 * RATE)]).max() > 0.4
    assert np.all(voice[int(1.5 * RATE) + 1 : int(2.5 * RATE)] == 0)
    assert np.abs(voice[int(2.6 * RATE) :]).max() > 0.4  # cut at the end of the media


def test_build_dub_track(jfk_flac: Path, tmp_path: Path) -> None:
    settings = MixSettings(sample_rate_hz=RATE)
    clips = [Clip(0, _tone(2.0), 22050)]
    plan = DubPlan((PlanItem(0, 1.0, 2.6, 1.25, 0.0),))
    out = build_dub_track(jfk_flac, plan, clips, settings=settings, duration_s=12.5, out_wav=tmp_path / "dub.wav")
    samples, rate = read_wav(out)
    assert rate == RATE and samples.shape == (int(12.5 * RATE), 2)
    assert [p.name for p in tmp_path.iterdir()] == ["dub.wav"]
    silent = build_dub_track(jfk_flac, DubPlan(), [], settings=settings, duration_s=11.0, out_wav=tmp_path / "o.wav")
    original, _ = read_wav(silent)
    assert original.shape == (11 * RATE, 2) and float(np.abs(original).max()) > 0.1


def _whole_array_dub(original: Path, plan: DubPlan, clips: list[Clip], settings: MixSettings, duration_s: float, out: Path) -> Path:
    """The dub track as it was made before streaming: every track a whole array, one mix_tracks, one write."""
    from pipelines.media import decode_audio, write_wav
    from pipelines.mix import _fit_length

    rate = settings.sample_rate_hz
    n = round(duration_s * rate)
    audio = _fit_length(decode_audio(original, sample_rate_hz=rate, channels=2), n)
    voice = render_voice(plan, clips, sample_rate_hz=rate, duration_s=duration_s)
    env = duck_envelope(plan, n, rate, gain_db=settings.duck_gain_db, ramp_ms=settings.ramp_ms)
    return write_wav(out, mix_tracks(audio, voice, env, voice_only=settings.background == "none"), rate)


@pytest.mark.parametrize(
    ("loudness", "voice_only", "duration_s"),
    [(0.5, False, 12.5), (4.0, False, 10.0), (0.5, True, 11.3)],
    ids=["ducked", "peak-limited", "voice-only"],
)
def test_streamed_mix_equals_the_whole_array_mix(
    jfk_flac: Path, tmp_path: Path, loudness: float, voice_only: bool, duration_s: float
) -> None:
    """Blocks of 0.37 s cut through every clip and ramp; the samples are those of the whole-array mix."""
    settings = MixSettings(background="none" if voice_only else "duck")  # 48 kHz, as in production
    clips = [Clip(0, loudness * _tone(2.0), 22050), Clip(1, loudness * _tone(1.5, 16000, 330.0), 16000),
             Clip(2, loudness * _tone(3.0), 22050), Clip(3, loudness * _tone(1.0, 48000), 48000)]  # fmt: skip
    plan = DubPlan((PlanItem(0, 0.4, 2.0, 1.25, 0.0), PlanItem(1, 1.9, 3.4, 1.0, 0.0),
                    PlanItem(2, 5.0, 7.3, 1.3, 0.0), PlanItem(3, 9.5, 10.5, 1.0, 0.4)))  # fmt: skip
    streamed = build_dub_track(jfk_flac, plan, clips, settings=settings, duration_s=duration_s,
                               out_wav=tmp_path / "streamed.wav", block_s=0.37)  # fmt: skip
    whole = _whole_array_dub(jfk_flac, plan, clips, settings, duration_s, tmp_path / "whole.wav")
    a, rate = read_wav(streamed)
    b, _ = read_wav(whole)
    assert rate == 48000 and a.shape == b.shape == (round(duration_s * 48000), 2)
    assert np.array_equal(a, b)
    assert streamed.read_bytes() == whole.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.wav", "whole.wav"]  # no scratch file left


def test_streamed_mix_of_media_without_audio(tmp_path: Path) -> None:
    from tests.conftest import make_video

    video = make_video(tmp_path / "silent.mp4", None, 3.0)
    clips = [Clip(0, _tone(1.0, 48000), 48000)]
    plan = DubPlan((PlanItem(0, 1.0, 2.0, 1.0, 0.0),))
    out = build_dub_track(video, plan, clips, settings=MixSettings(), duration_s=3.0, out_wav=tmp_path / "d.wav", block_s=0.7)
    samples, _ = read_wav(out)
    assert samples.shape == (3 * 48000, 2) and np.all(samples[: 48000 - 1] == 0)
    assert float(np.abs(samples[48000:96000]).max()) > 0.4


def test_a_decoding_failure_leaves_nothing(tmp_path: Path) -> None:
    from pipelines.errors import MediaError
    from pipelines.media import iter_audio_blocks

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    with pytest.raises(MediaError):
        list(iter_audio_blocks(bad, sample_rate_hz=48000, channels=2, block_frames=4800))


_RSS_CHILD = """
import resource, sys
from pathlib import Path
import numpy as np
from configs.settings import MixSettings
from pipelines.mix import build_dub_track
from pipelines.schema import Clip, DubPlan, PlanItem

src, seconds, out = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
tone = (0.3 * np.sin(np.arange(3 * 48000) / 48000 * 2 * np.pi * 220)).astype(np.float32)
starts = np.arange(10.0, seconds - 5, 30.0)  # a 3 s line every 30 s, some sped up (ffmpeg atempo)
clips = [Clip(i, tone, 48000) for i in range(len(starts))]
plan = DubPlan(tuple(PlanItem(i, s, s + (2.5 if i % 5 == 0 else 3.0), 1.2 if i % 5 == 0 else 1.0, 0.0) for i, s in enumerate(starts)))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
build_dub_track(src, plan, clips, settings=MixSettings(), duration_s=seconds, out_wav=out)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0)
"""


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path) -> Path:
    """20 minutes of speech and silence: the JFK clip and 4 s of silence, looped (16 kHz mono WAV, ~38 MB)."""
    from pipelines.media import run_ffmpeg

    out = tmp_path_factory.mktemp("long") / "long.wav"
    run_ffmpeg(["-stream_loop", "-1", "-i", str(jfk_flac), "-af", "apad=pad_dur=4", "-t", "1200", "-ac", "1",
                "-ar", "16000", "-c:a", "pcm_s16le", str(out)])  # fmt: skip
    return out


def test_mix_memory_does_not_grow_with_the_duration(long_speech: Path, tmp_path: Path) -> None:
    """The peak memory the mix adds (measured in a fresh process) is the same for 2 and for 20 minutes; the whole
    arrays took ~4 x 460 MB for 20 minutes of 48 kHz stereo float32."""
    import subprocess
    import sys

    def growth_mb(seconds: float) -> float:
        cmd = [sys.executable, "-c", _RSS_CHILD, str(long_speech), str(seconds), str(tmp_path / f"d{seconds:.0f}.wav")]
        return float(subprocess.run(cmd, capture_output=True, check=True, text=True).stdout.strip().splitlines()[-1])

    short, long = growth_mb(120.0), growth_mb(1200.0)
    samples, _ = read_wav(tmp_path / "d120.wav")
    assert samples.shape == (120 * 48000, 2)
    assert (tmp_path / "d1200.wav").stat().st_size > 1200 * 48000 * 4  # the whole 20 minutes was written
    assert long < short + 40.0, f"mix peak grew from {short:.0f} MB (2 min) to {long:.0f} MB (20 min)"
