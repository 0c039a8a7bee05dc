"""ffmpeg and ffprobe behind a small seam: probing, audio extraction and decoding to numpy.

Every call passes an argument list (never a shell string). A failure becomes a domain error
carrying ffmpeg's stderr in ``detail``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines.errors import InputNotFound, InvalidMedia, MediaError, NoAudioStream
from pipelines.schema import MediaInfo

logger = logging.getLogger(__name__)

ASR_SAMPLE_RATE_HZ = 16000


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MediaError(f"{name} is not installed; install ffmpeg (e.g. `apt-get install ffmpeg`)")
    return path


def run_ffmpeg(args: Sequence[str], *, input_bytes: bytes | None = None, what: str = "ffmpeg") -> bytes:
    """Run ffmpeg with ``args`` (no leading 'ffmpeg'); return stdout. Raises MediaError with stderr."""
    cmd = [_binary("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(cmd, input=input_bytes, capture_output=True, check=False)
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        last = stderr.splitlines()[-1] if stderr else f"exit code {proc.returncode}"
        raise MediaError(f"{what} failed: {last}", detail=stderr)
    return proc.stdout


def probe(path: str | Path) -> MediaInfo:
    """Describe a media file. Raises InputNotFound, InvalidMedia (not media, truncated, empty)."""
    p = Path(path)
    if not p.is_file():
        raise InputNotFound(f"input file not found: {p}")
    if p.stat().st_size == 0:
        raise InvalidMedia(f"input file is empty: {p.name}")
    cmd = [_binary("ffprobe"), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(p)]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        reason = stderr.splitlines()[-1] if stderr else "unreadable"
        raise InvalidMedia(f"not a readable media file: {p.name} ({_short(reason, p)})", detail=stderr)
    data = json.loads(proc.stdout or b"{}")
    streams = data.get("streams", [])
    fmt = data.get("format", {})
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _duration(fmt, streams)
    if video is None and audio is None:
        raise InvalidMedia(f"no audio or video stream in {p.name}")
    if duration is None or duration <= 0:
        raise InvalidMedia(f"cannot determine the duration of {p.name}; the file may be truncated")
    return MediaInfo(
        path=str(p),
        duration_s=duration,
        has_video=video is not None,
        has_audio=audio is not None,
        video_codec=video.get("codec_name") if video else None,
        audio_codec=audio.get("codec_name") if audio else None,
        width=video.get("width") if video else None,
        height=video.get("height") if video else None,
        format_name=fmt.get("format_name", ""),
    )


def _short(reason: str, p: Path) -> str:
    return reason.replace(str(p), "").strip(" :") or "unreadable"


def _duration(fmt: dict[str, object], streams: list[dict[str, object]]) -> float | None:
    for value in [fmt.get("duration"), *(s.get("duration") for s in streams)]:
        try:
            if value is not None and float(str(value)) > 0:
                return float(str(value))
        except ValueError:
            continue
    return None


def extract_audio(info: MediaInfo, out_wav: str | Path, *, sample_rate_hz: int = ASR_SAMPLE_RATE_HZ) -> Path:
    """Write the first audio stream as mono 16-bit PCM WAV at ``sample_rate_hz`` (atomically).

    Raises NoAudioStream when the input has none, InvalidMedia when it cannot be decoded.
    """
    if not info.has_audio:
        raise NoAudioStream(f"the input has no audio stream to translate: {Path(info.path).name}")
    out = Path(out_wav)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".wav", dir=out.parent)
    os.close(fd)
    try:
        args = ["-i", info.path, "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sample_rate_hz)]
        args += ["-c:a", "pcm_s16le", "-f", "wav", tmp_name]
        try:
            run_ffmpeg(args, what="audio extraction")
        except MediaError as exc:
            raise InvalidMedia(f"cannot decode the audio of {Path(info.path).name}: {exc}", detail=exc.detail) from exc
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return out


def decode_audio(path: str | Path, *, sample_rate_hz: int, channels: int = 1, stream: str = "0:a:0") -> np.ndarray:
    """Decode audio to float32 samples, shape (n,) for mono or (n, channels)."""
    args = ["-i", str(path), "-map", stream, "-vn", "-ac", str(channels), "-ar", str(sample_rate_hz), "-f", "f32le", "pipe:1"]
    raw = run_ffmpeg(args, what="audio decoding")
    samples = np.frombuffer(raw, dtype=np.float32).copy()
    return samples if channels == 1 else samples.reshape(-1, channels)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate_hz: int) -> Path:
    """Write float32 samples ((n,) or (n, ch)) as 16-bit PCM WAV, atomically."""
    import soundfile as sf

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.wav")
    sf.write(tmp, np.clip(samples, -1.0, 1.0), sample_rate_hz, subtype="PCM_16")
    os.replace(tmp, out)
    return out


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 samples and its rate."""
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=False)
    return np.asarray(data, dtype=np.float32), int(rate)
