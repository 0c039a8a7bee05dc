"""ffmpeg and ffprobe behind a small seam: probing, audio extraction and decoding to numpy.

Every call passes an argument list (never a shell string). A failure becomes a domain error
carrying ffmpeg's stderr in ``detail``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np

from pipelines.errors import InputNotFound, InvalidMedia, MediaError, MediaTooLong, NoAudioStream
from pipelines.fileio import atomic_path
from pipelines.schema import MediaInfo

logger = logging.getLogger(__name__)

ASR_SAMPLE_RATE_HZ = 16000
# ffmpeg and ffprobe open local files and pipes only: a crafted playlist cannot fetch a URL.
PROTOCOL_WHITELIST = "file,pipe"
# Formats whose files name OTHER files or URLs (HLS, ffconcat, DASH, IMF): refused before ffprobe opens
# them, so an upload can never make ffmpeg read another local file (another user's upload, /etc/passwd).
REFERENCE_FORMATS = frozenset({"hls", "applehttp", "concat", "dash", "imf"})
_REFERENCE_MAGIC = (b"#EXTM3U", b"ffconcat version")
_REFERENCE_XML = (b"<MPD", b"CompositionPlaylist")
# Guards against headers that lie: a video frame this large would take gigabytes to decode, and a file that
# claims more than a minute with fewer bytes a second than any real codec (~1 KB/s at least) is truncated or
# forged (a 20 KB file "lasting" 3 hours would make the mix allocate hours of samples).
MAX_VIDEO_PIXELS = 8192 * 8192
MIN_BYTES_PER_SECOND = 8.0


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MediaError(f"{name} is not installed; install ffmpeg (e.g. `apt-get install ffmpeg`)")
    return path


def _whitelisted(args: Sequence[str]) -> list[str]:
    """``args`` with ``-protocol_whitelist file,pipe`` before every ``-i`` (it is a per-input option): an input
    (or a playlist inside it) can name no URL, only local files and stdin."""
    out: list[str] = []
    for arg in args:
        if arg == "-i":
            out += ["-protocol_whitelist", PROTOCOL_WHITELIST]
        out.append(arg)
    return out


def run_ffmpeg(args: Sequence[str], *, input_bytes: bytes | None = None, what: str = "ffmpeg") -> bytes:
    """Run ffmpeg with ``args`` (no leading 'ffmpeg'); return stdout. Raises MediaError with stderr."""
    cmd = [_binary("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *_whitelisted(args)]
    proc = subprocess.run(cmd, input=input_bytes, capture_output=True, check=False)
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        last = stderr.splitlines()[-1] if stderr else f"exit code {proc.returncode}"
        raise MediaError(f"{what} failed: {last}", detail=stderr)
    return proc.stdout


def probe(path: str | Path, *, max_duration_s: float | None = None) -> MediaInfo:
    """Describe a media file. Raises InputNotFound, InvalidMedia (not media, truncated, empty), MediaTooLong
    (it claims to last more than ``max_duration_s`` seconds; None: no limit)."""
    p = Path(path)
    if not p.is_file():
        raise InputNotFound(f"input file not found: {p}")
    if p.stat().st_size == 0:
        raise InvalidMedia(f"input file is empty: {p.name}")
    _refuse_references(p)
    cmd = [_binary("ffprobe"), "-v", "error", "-protocol_whitelist", PROTOCOL_WHITELIST, "-print_format", "json"]
    cmd += ["-show_format", "-show_streams", str(p)]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        reason = stderr.splitlines()[-1] if stderr else "unreadable"
        raise InvalidMedia(f"not a readable media file: {p.name} ({_short(reason, p)})", detail=stderr)
    data = json.loads(proc.stdout or b"{}")
    streams = data.get("streams", [])
    fmt = data.get("format", {})
    streams = [s for s in streams if s.get("codec_name") not in (None, "", "unknown", "none")]  # no decoder
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _duration(fmt, streams)
    if video is None and audio is None:
        raise InvalidMedia(f"no audio or video stream that ffmpeg can decode in {p.name}")
    if duration is None or duration <= 0:
        raise InvalidMedia(f"cannot determine the duration of {p.name}; the file may be truncated")
    _check_plausible(p, fmt, video, duration)
    check_duration(p.name, duration, max_duration_s)
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


def partial_duration(path: str | Path, *, timeout_s: float = 10.0) -> float | None:
    """The duration (seconds) a file still being written already declares (an mp4 with its index first, most
    streams), or None when it tells none yet. Never raises: a partial file is expected to be unreadable."""
    cmd = [_binary("ffprobe"), "-v", "error", "-protocol_whitelist", PROTOCOL_WHITELIST]
    cmd += ["-show_entries", "format=duration", "-of", "json", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False, timeout=timeout_s)
        value = json.loads(proc.stdout or b"{}").get("format", {}).get("duration")
        return float(value) if value not in (None, "N/A") else None
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return None


def _refuse_references(p: Path) -> None:
    """InvalidMedia for a playlist or concat list (by its first bytes, before anything opens it)."""
    with p.open("rb") as f:
        head = f.read(4096)
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(_REFERENCE_MAGIC) or any(tag in head for tag in _REFERENCE_XML):
        raise InvalidMedia(f"{p.name} is a playlist or a list of other files, not media; upload the media itself")


def _check_plausible(p: Path, fmt: dict[str, object], video: dict[str, object] | None, duration: float) -> None:
    """InvalidMedia for what ffprobe read but the pipeline must not trust (see the limits above)."""
    formats = set(str(fmt.get("format_name", "")).split(","))
    if formats & REFERENCE_FORMATS:
        raise InvalidMedia(f"{p.name} is a playlist or a list of other files, not media; upload the media itself")
    if video is not None:
        width, height = int(str(video.get("width") or 0)), int(str(video.get("height") or 0))
        if width * height > MAX_VIDEO_PIXELS:
            raise InvalidMedia(f"the video of {p.name} is {width}x{height} pixels; at most 8192x8192 is accepted")
    size = p.stat().st_size
    if duration > 60 and size / duration < MIN_BYTES_PER_SECOND:
        raise InvalidMedia(
            f"{p.name} claims to last {duration:.0f} s but holds only {size} bytes; its header is wrong or it is truncated"
        )


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def check_duration(name: str, duration_s: float, max_duration_s: float | None, *, what: str = "lasts") -> None:
    """MediaTooLong when ``duration_s`` passes ``max_duration_s`` (None: no limit); ``name``: the file's."""
    if max_duration_s is not None and duration_s > max_duration_s:
        raise MediaTooLong(
            f"{name} {what} {_clock(duration_s)} (h:mm:ss); at most {_clock(max_duration_s)} is accepted"
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


def extract_audio(
    info: MediaInfo,
    out_wav: str | Path,
    *,
    sample_rate_hz: int = ASR_SAMPLE_RATE_HZ,
    max_duration_s: float | None = None,
) -> Path:
    """Write the first audio stream as mono 16-bit PCM WAV at ``sample_rate_hz`` (atomically).

    With ``max_duration_s`` ffmpeg decodes at most a second more than that, whatever the header claimed, and a
    longer result raises MediaTooLong. Raises NoAudioStream when the input has none, InvalidMedia when it
    cannot be decoded.
    """
    name = Path(info.path).name
    if not info.has_audio:
        raise NoAudioStream(f"the input has no audio stream to translate: {name}")
    out = Path(out_wav)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".wav") as tmp:
        args = ["-i", info.path, "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sample_rate_hz)]
        if max_duration_s is not None:  # a header that lies about the length cannot make us decode hours
            args += ["-t", f"{max_duration_s + 1.0:.3f}"]
        args += ["-c:a", "pcm_s16le", "-f", "wav", str(tmp)]
        try:
            run_ffmpeg(args, what="audio extraction")
        except MediaError as exc:
            raise InvalidMedia(f"cannot decode the audio of {name}: {exc}", detail=exc.detail) from exc
        frames, rate = _wav_frames(str(tmp))
        if frames == 0 and info.duration_s > 0.01:
            raise InvalidMedia(f"no audio could be decoded from {name}; the file holds no media data")
        check_duration(name, frames / rate, max_duration_s, what="decodes to more than")
    return out


def _wav_frames(path: str) -> tuple[int, int]:
    """A WAV file's frame count and sample rate (Hz)."""
    import soundfile as sf

    info = sf.info(path)
    return int(info.frames), int(info.samplerate)


def decode_audio(path: str | Path, *, sample_rate_hz: int, channels: int = 1, stream: str = "0:a:0") -> np.ndarray:
    """Decode audio to float32 samples, shape (n,) for mono or (n, channels)."""
    args = ["-i", str(path), "-map", stream, "-vn", "-ac", str(channels), "-ar", str(sample_rate_hz), "-f", "f32le", "pipe:1"]
    raw = run_ffmpeg(args, what="audio decoding")
    samples = np.frombuffer(raw, dtype=np.float32).copy()
    return samples if channels == 1 else samples.reshape(-1, channels)


def iter_audio_blocks(
    path: str | Path, *, sample_rate_hz: int, channels: int, block_frames: int, stream: str = "0:a:0"
) -> Generator[np.ndarray, None, None]:
    """Decode audio like :func:`decode_audio`, but yield it in float32 blocks of ``block_frames`` frames (the last
    may be shorter), shape (frames, channels): memory stays one block whatever the length of the file.

    The caller may stop early (ffmpeg is then stopped). Raises MediaError with ffmpeg's stderr when it fails.
    """
    args = ["-i", str(path), "-map", stream, "-vn", "-ac", str(channels), "-ar", str(sample_rate_hz)]
    cmd = [_binary("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *_whitelisted(args)]
    block_bytes = block_frames * channels * 4
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([*cmd, "-f", "f32le", "pipe:1"], stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        finished = False
        try:
            while True:
                raw = proc.stdout.read(block_bytes)
                usable = len(raw) - len(raw) % (channels * 4)
                if usable:
                    yield np.frombuffer(raw[:usable], dtype=np.float32).reshape(-1, channels).copy()
                if len(raw) < block_bytes:
                    break
            finished = True
        finally:
            if not finished:  # the caller stopped early (or failed): ffmpeg need not decode the rest
                proc.kill()
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace").strip()
            last = stderr.splitlines()[-1] if stderr else f"exit code {code}"
            raise MediaError(f"audio decoding failed: {last}", detail=stderr)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate_hz: int) -> Path:
    """Write float32 samples ((n,) or (n, ch)) as 16-bit PCM WAV, atomically."""
    import soundfile as sf

    out = Path(path)
    with atomic_path(out, suffix=".wav") as tmp:
        sf.write(tmp, np.clip(samples, -1.0, 1.0), sample_rate_hz, subtype="PCM_16")
    return out


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 samples and its rate."""
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=False)
    return np.asarray(data, dtype=np.float32), int(rate)
