"""Mixing: stretch clips per the DubPlan, lay them on a voice track, over the original ducked, its separated
background, or nothing (``mix.background``).

``duck_envelope`` and ``mix_tracks`` are pure numpy; ``time_stretch`` and ``build_dub_track``
call ffmpeg through ``pipelines.media``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from pipelines.fileio import atomic_path
from pipelines.media import iter_audio_blocks, probe, run_ffmpeg
from pipelines.schema import Clip, DubPlan

if TYPE_CHECKING:
    from configs.settings import MixSettings

logger = logging.getLogger(__name__)

PEAK_LIMIT = 0.99
_ATEMPO_MIN, _ATEMPO_MAX = 0.5, 2.0  # one atempo stage stays artefact-free within this range
MIX_CHANNELS = 2
# The streamed mix's block: a few seconds (about 4 MB of 48 kHz stereo float32 per array), whatever the duration.
MIX_BLOCK_S = 5.0


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


class VoiceTrack:
    """The voice track, rendered one block at a time: each clip stretched by its plan speed and placed at its
    plan start, cut to its planned length (so none overlap) and at the end of the media.

    A clip is stretched when the first block it reaches is asked for and dropped after the last one, so
    memory holds the clips that play in the block, whatever the length of the media. Blocks must be asked
    for in time order. ``n_samples``: the track's length.
    """

    def __init__(self, plan: DubPlan, clips: Sequence[Clip], *, sample_rate_hz: int, n_samples: int) -> None:
        self.rate, self.n = sample_rate_hz, n_samples
        by_id = {clip.id: clip for clip in clips}
        self._pending: list[tuple[int, int, Clip, float, int]] = []  # (order, pos, clip, speed, planned samples)
        for order, item in enumerate(plan.items):
            clip = by_id.get(item.id)
            if clip is None:
                logger.warning("plan item %d has no clip; skipped", item.id)
                continue
            pos = round(item.start_s * sample_rate_hz)
            if clip.samples.size == 0 or pos >= n_samples or item.end_s <= item.start_s:
                continue
            planned = round((item.end_s - item.start_s) * sample_rate_hz)
            self._pending.append((order, pos, clip, item.speed, planned))
        self._pending.sort(key=lambda p: (p[1], p[0]))
        self._active: list[tuple[int, int, np.ndarray]] = []  # (order, pos, stretched samples)

    def block(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``lo`` to ``hi`` of the track (mono float32)."""
        while self._pending and self._pending[0][1] < hi:
            order, pos, clip, speed, planned = self._pending.pop(0)
            voice = time_stretch(clip.samples, clip.sample_rate_hz, speed, self.rate)
            self._active.append((order, pos, voice[: min(planned, self.n - pos)]))
        self._active = [a for a in self._active if a[1] + a[2].size > lo]
        out = np.zeros(hi - lo, dtype=np.float32)
        for _, pos, voice in sorted(self._active, key=lambda a: a[0]):  # plan order: the sums round the same
            a, b = max(lo, pos), min(hi, pos + voice.size)
            if a < b:
                out[a - lo : b - lo] += voice[a - pos : b - pos]
        return out


def render_voice(plan: DubPlan, clips: Sequence[Clip], *, sample_rate_hz: int, duration_s: float) -> np.ndarray:
    """The whole voice track (see :class:`VoiceTrack`): mono float32 of ``round(duration_s * sample_rate_hz)``."""
    n = round(duration_s * sample_rate_hz)
    return VoiceTrack(plan, clips, sample_rate_hz=sample_rate_hz, n_samples=n).block(0, n)


def duck_envelope(
    plan: DubPlan,
    n_samples: int,
    sample_rate_hz: int,
    *,
    gain_db: float = -14.0,
    ramp_ms: float = 120.0,
    start_sample: int = 0,
) -> np.ndarray:
    """Gain for the original audio: 1 outside speech, ``10**(gain_db/20)`` under each dubbed clip.

    The gain ramps linearly over ``ramp_ms`` before a clip starts and after it ends, so the
    original is fully ducked while the clip plays. Float32, ``n_samples`` long, from sample
    ``start_sample`` of the media (a block of the whole envelope, with the same values).
    """
    end = start_sample + n_samples
    env = np.ones(n_samples, dtype=np.float32)
    floor = 10.0 ** (gain_db / 20.0)
    ramp_s = max(0.0, ramp_ms) / 1000.0
    for item in plan.items:
        if item.end_s <= item.start_s:
            continue
        lo = max(start_sample, int(np.floor((item.start_s - ramp_s) * sample_rate_hz)))
        hi = min(end, int(np.ceil((item.end_s + ramp_s) * sample_rate_hz)) + 1)
        if lo >= hi:
            continue
        t = np.arange(lo, hi, dtype=np.float64) / sample_rate_hz
        if ramp_s > 0:
            depth = np.minimum((t - (item.start_s - ramp_s)) / ramp_s, ((item.end_s + ramp_s) - t) / ramp_s)
            depth = np.clip(depth, 0.0, 1.0)
        else:
            depth = ((t >= item.start_s) & (t < item.end_s)).astype(np.float64)
        a, b = lo - start_sample, hi - start_sample
        env[a:b] = np.minimum(env[a:b], (1.0 - depth * (1.0 - floor)).astype(np.float32))
    return env


def _fit_length(values: np.ndarray, n: int) -> np.ndarray:
    if values.shape[0] >= n:
        return values[:n]
    pad = [(0, n - values.shape[0])] + [(0, 0)] * (values.ndim - 1)
    return np.pad(values, pad)


def _mix_block(orig: np.ndarray, voice: np.ndarray, envelope: np.ndarray, *, voice_only: bool) -> np.ndarray:
    """``orig * envelope + voice`` on every channel of ``orig`` (all the same length); unscaled."""
    v, env = voice, envelope
    if orig.ndim == 2:
        v, env = v[:, None], env[:, None]
    bed = np.zeros_like(orig) if voice_only else orig * env
    mixed: np.ndarray = (bed + v).astype(np.float32)
    return mixed


def _limit(peak: float) -> float | None:
    """The factor that brings a mix whose peak is ``peak`` down to PEAK_LIMIT; None when it is under."""
    return PEAK_LIMIT / peak if peak > PEAK_LIMIT else None


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
    mixed = _mix_block(orig, v, env, voice_only=voice_only)
    factor = _limit(float(np.max(np.abs(mixed))) if mixed.size else 0.0)
    if factor is not None:
        mixed *= factor
    return mixed


def _no_blocks() -> Generator[np.ndarray, None, None]:
    yield from ()


def original_blocks(path: Path, sample_rate_hz: int, n: int, block_frames: int) -> Iterator[np.ndarray]:
    """The input's first audio stream as (frames, 2) float32 blocks of ``block_frames`` (the last shorter),
    exactly ``n`` frames in all: cut or padded with silence (all silence when it has no audio)."""
    blocks: Generator[np.ndarray, None, None] = _no_blocks()
    if probe(path).has_audio:
        blocks = iter_audio_blocks(path, sample_rate_hz=sample_rate_hz, channels=MIX_CHANNELS, block_frames=block_frames)
    else:
        logger.warning("%s has no audio stream; the dub track has only the voice", path.name)
    try:
        buffered = np.zeros((0, MIX_CHANNELS), dtype=np.float32)
        for lo in range(0, n, block_frames):
            want = min(block_frames, n - lo)
            while buffered.shape[0] < want and (nxt := next(blocks, None)) is not None:
                buffered = np.concatenate([buffered, nxt]) if buffered.size else nxt
            yield _fit_length(buffered[:want], want)
            buffered = buffered[want:]
    finally:
        blocks.close()


def build_dub_track(
    original_path: Path,
    plan: DubPlan,
    clips: Sequence[Clip],
    *,
    settings: MixSettings,
    duration_s: float,
    out_wav: Path,
    block_s: float = MIX_BLOCK_S,
) -> Path:
    """Write the dubbed track (stereo WAV at ``settings.sample_rate_hz``, exactly ``duration_s``).

    The rendered voice over ``original_path``'s audio, as ``settings.background`` says: 'duck' lowers it under each
    clip, 'separate' plays it as it is (the caller passes the background stem, the voice already removed), 'none'
    leaves it out; just the original when there is no speech. Streamed in blocks of ``block_s`` seconds: the mix goes once through a float32 scratch file
    beside ``out_wav`` (the peak limit needs the whole mix's peak) and then into the 16-bit WAV, so memory
    does not grow with the duration. The samples are those of :func:`mix_tracks` over the whole arrays.
    Written atomically. Raises MediaError/InvalidMedia when the original can't be decoded.
    """
    rate = settings.sample_rate_hz
    n = round(duration_s * rate)
    block = max(1, round(block_s * rate))
    out = Path(out_wav)
    speech = any(clip.samples.size for clip in clips)
    if not speech:
        logger.info("no dubbed speech; the dub track is the original audio")
    with atomic_path(out, suffix=".wav") as tmp, tempfile.TemporaryFile(dir=out.parent) as scratch:
        peak = 0.0
        voice = VoiceTrack(plan, clips, sample_rate_hz=rate, n_samples=n)
        originals: Iterator[np.ndarray]
        voice_only, duck = settings.background == "none", settings.background == "duck"
        if speech and voice_only:  # the original is not heard: no need to decode it
            originals = (np.zeros((min(block, n - lo), MIX_CHANNELS), np.float32) for lo in range(0, n, block))
        else:
            originals = original_blocks(Path(original_path), rate, n, block)
        for lo, orig in zip(range(0, n, block), originals, strict=True):
            hi = lo + orig.shape[0]
            if speech:
                env = np.ones(hi - lo, dtype=np.float32)
                if duck:
                    env = duck_envelope(plan, hi - lo, rate, gain_db=settings.duck_gain_db, ramp_ms=settings.ramp_ms, start_sample=lo)
                orig = _mix_block(orig, voice.block(lo, hi), env, voice_only=voice_only)
                peak = max(peak, float(np.max(np.abs(orig))) if orig.size else 0.0)
            scratch.write(orig.tobytes())
        factor = _limit(peak)
        scratch.seek(0)
        with sf.SoundFile(tmp, "w", samplerate=rate, channels=MIX_CHANNELS, subtype="PCM_16", format="WAV") as wav:
            for lo in range(0, n, block):
                mixed = np.frombuffer(scratch.read(min(block, n - lo) * MIX_CHANNELS * 4), dtype=np.float32)
                mixed = mixed.reshape(-1, MIX_CHANNELS).copy()
                if factor is not None:
                    mixed *= factor
                wav.write(np.clip(mixed, -1.0, 1.0))
    return out
