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
