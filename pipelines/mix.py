"""Mixing: stretch clips per the DubPlan, lay them on a voice track, duck the original under them.

``duck_envelope`` and ``mix_tracks`` are pure numpy; ``time_stretch`` and ``build_dub_track``
call ffmpeg through ``pipelines.media``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.media import decode_audio, probe, run_ffmpeg, write_wav
from pipelines.schema import Clip, DubPlan

if TYPE_CHECKING:
    from configs.settings import MixSettings

logger = logging.getLogger(__name__)

PEAK_LIMIT = 0.99
_ATEMPO_MIN, _ATEMPO_MAX = 0.5, 2.0  # one atempo stage stays artefact-free within this range
MIX_CHANNELS = 2


def atempo_chain(speed: float) -> list[str]:
    """``atempo`` filters whose product is ``speed`` (each within [0.5, 2])."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    stages: list[str] = []
    remaining = speed
    while remaining > _ATEMPO_MAX:
        stages.append(f"atempo={_ATEMPO_MAX}")
        remaining /= _ATEMPO_MAX
    while remaining < _ATEMPO_MIN:
        stages.append(f"atempo={_ATEMPO_MIN}")
        remaining /= _ATEMPO_MIN
    if abs(remaining - 1.0) > 1e-9:
        stages.append(f"atempo={remaining:.6f}")
    return stages


def time_stretch(samples: np.ndarray, sample_rate_hz: int, speed: float, out_rate_hz: int) -> np.ndarray:
    """Play mono ``samples`` ``speed`` times faster, pitch kept, resampled to ``out_rate_hz``.

    Output length is about ``len * out_rate / rate / speed``. Returns the input unchanged when
    there is nothing to do. Raises MediaError when ffmpeg fails.
    """
    if samples.dtype == np.float32 and samples.ndim == 1 and samples.flags.c_contiguous:
        audio = samples
    else:
        audio = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
    if audio.size == 0 or (abs(speed - 1.0) < 1e-6 and sample_rate_hz == out_rate_hz):
        return audio
    filters = [*atempo_chain(speed), f"aresample={out_rate_hz}"]
    args = ["-f", "f32le", "-ar", str(sample_rate_hz), "-ac", "1", "-i", "pipe:0"]
    args += ["-af", ",".join(filters), "-f", "f32le", "-ar", str(out_rate_hz), "-ac", "1", "pipe:1"]
    raw = run_ffmpeg(args, input_bytes=audio.tobytes(), what="time stretch")
    return np.frombuffer(raw, dtype=np.float32).copy()


def render_voice(plan: DubPlan, clips: Sequence[Clip], *, sample_rate_hz: int, duration_s: float) -> np.ndarray:
    """The voice track: each clip stretched by its plan speed and placed at its plan start.

    Mono float32 of exactly ``round(duration_s * sample_rate_hz)`` samples; a clip running past
    the end of the media is cut there, and a clip is cut to its planned length so none overlap.
    """
    n = round(duration_s * sample_rate_hz)
    out = np.zeros(n, dtype=np.float32)
    by_id = {clip.id: clip for clip in clips}
    for item in plan.items:
        clip = by_id.get(item.id)
        if clip is None:
            logger.warning("plan item %d has no clip; skipped", item.id)
            continue
        pos = round(item.start_s * sample_rate_hz)
        if clip.samples.size == 0 or pos >= n or item.end_s <= item.start_s:
            continue
        voice = time_stretch(clip.samples, clip.sample_rate_hz, item.speed, sample_rate_hz)
        planned = round((item.end_s - item.start_s) * sample_rate_hz)
        voice = voice[: min(planned, n - pos)]
        out[pos : pos + voice.size] += voice
    return out


def duck_envelope(
    plan: DubPlan, n_samples: int, sample_rate_hz: int, *, gain_db: float = -14.0, ramp_ms: float = 120.0
) -> np.ndarray:
    """Gain for the original audio: 1 outside speech, ``10**(gain_db/20)`` under each dubbed clip.

    The gain ramps linearly over ``ramp_ms`` before a clip starts and after it ends, so the
    original is fully ducked while the clip plays. Float32, ``n_samples`` long.
    """
    env = np.ones(n_samples, dtype=np.float32)
    floor = 10.0 ** (gain_db / 20.0)
    ramp_s = max(0.0, ramp_ms) / 1000.0
    for item in plan.items:
        if item.end_s <= item.start_s:
            continue
        lo = max(0, int(np.floor((item.start_s - ramp_s) * sample_rate_hz)))
        hi = min(n_samples, int(np.ceil((item.end_s + ramp_s) * sample_rate_hz)) + 1)
        if lo >= hi:
            continue
        t = np.arange(lo, hi, dtype=np.float64) / sample_rate_hz
        if ramp_s > 0:
            depth = np.minimum((t - (item.start_s - ramp_s)) / ramp_s, ((item.end_s + ramp_s) - t) / ramp_s)
            depth = np.clip(depth, 0.0, 1.0)
        else:
            depth = ((t >= item.start_s) & (t < item.end_s)).astype(np.float64)
        env[lo:hi] = np.minimum(env[lo:hi], (1.0 - depth * (1.0 - floor)).astype(np.float32))
    return env


def _fit_length(values: np.ndarray, n: int) -> np.ndarray:
    if values.shape[0] >= n:
        return values[:n]
    pad = [(0, n - values.shape[0])] + [(0, 0)] * (values.ndim - 1)
    return np.pad(values, pad)


def mix_tracks(
    original: np.ndarray, voice: np.ndarray, envelope: np.ndarray, *, voice_only: bool = False
) -> np.ndarray:
    """``original * envelope + voice`` on every channel (just the voice when ``voice_only``).

    ``original`` is (n,) or (n, ch); the result has its shape. ``voice`` and ``envelope`` are cut
    or zero-padded to n. The result is scaled down when its peak exceeds 0.99, so it never clips.
    """
    orig = np.asarray(original, dtype=np.float32)
    n = orig.shape[0]
    v = _fit_length(np.asarray(voice, dtype=np.float32).reshape(-1), n)
    env = _fit_length(np.asarray(envelope, dtype=np.float32).reshape(-1), n)
    if orig.ndim == 2:
        v, env = v[:, None], env[:, None]
    bed = np.zeros_like(orig) if voice_only else orig * env
    mixed: np.ndarray = (bed + v).astype(np.float32)
    peak = float(np.max(np.abs(mixed))) if mixed.size else 0.0
    if peak > PEAK_LIMIT:
        mixed *= PEAK_LIMIT / peak
    return mixed


def _original_audio(path: Path, sample_rate_hz: int, n: int) -> np.ndarray:
    """The input's first audio stream as (n, 2) float32 (silence when it has none)."""
    if not probe(path).has_audio:
        logger.warning("%s has no audio stream; the dub track has only the voice", path.name)
        return np.zeros((n, MIX_CHANNELS), dtype=np.float32)
    audio = decode_audio(path, sample_rate_hz=sample_rate_hz, channels=MIX_CHANNELS)
    return _fit_length(audio, n)


def build_dub_track(
    original_path: Path,
    plan: DubPlan,
    clips: Sequence[Clip],
    *,
    settings: MixSettings,
    duration_s: float,
    out_wav: Path,
) -> Path:
    """Write the dubbed track (stereo WAV at ``settings.sample_rate_hz``, exactly ``duration_s``).

    The original audio ducked under the rendered voice; just the original when there is no
    speech. Written atomically. Raises MediaError/InvalidMedia when the original can't be decoded.
    """
    rate = settings.sample_rate_hz
    n = round(duration_s * rate)
    original = _original_audio(Path(original_path), rate, n)
    if not any(clip.samples.size for clip in clips):
        logger.info("no dubbed speech; the dub track is the original audio")
        mixed = original
    else:
        voice = render_voice(plan, clips, sample_rate_hz=rate, duration_s=duration_s)
        env = duck_envelope(plan, n, rate, gain_db=settings.duck_gain_db, ramp_ms=settings.ramp_ms)
        mixed = mix_tracks(original, voice, env, voice_only=settings.voice_only)
    return write_wav(out_wav, mixed, rate)
