"""The bad-input corpus: broken, hostile and edge-case media files, generated with ffmpeg into a folder.

Nothing here is committed: ``build(folder)`` writes every file in a few seconds (tiny files: 64x48 colour,
a 2 s tone) and returns name → path. Some files are made by patching a good one (the mp4 ``mvhd``
duration, a Matroska CodecID or PixelWidth), so each one breaks in exactly one known way.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

FFMPEG = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
SIZE = "64x48"
SECONDS = 2.0


def _ffmpeg(*args: str) -> None:
    subprocess.run([*FFMPEG, *args], check=True, capture_output=True)


def _video(out: Path, *, audio: bool = True, faststart: bool = False, seconds: float = SECONDS) -> Path:
    args = ["-f", "lavfi", "-i", f"color=c=navy:s={SIZE}:r=25:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-c:a", "aac", "-b:a", "64k"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-t", str(seconds)]
    if faststart:
        args += ["-movflags", "+faststart"]
    _ffmpeg(*args, str(out))
    return out


def _atoms(data: bytes) -> list[tuple[bytes, int, int]]:
    """Top-level mp4 boxes: (type, offset, size)."""
    boxes, i = [], 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        if size < 8:
            break
        boxes.append((kind, i, size))
        i += size
    return boxes


def good_video(folder: Path) -> Path:
    """A valid 2 s mp4 (h264 + aac): the control case, and the body of the file-name cases."""
    return _video(folder / "good.mp4")


def zero_bytes(folder: Path) -> Path:
    path = folder / "zero.mp4"
    path.write_bytes(b"")
    return path


def text_as_mp4(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("This is a text file with a video extension.\n" * 20, encoding="utf-8")
    return path


def truncated_mp4(folder: Path) -> Path:
    """The first 60 % of an mp4 whose index (moov) comes last: the index is gone."""
    data = _video(folder / ".truncated-src.mp4").read_bytes()
    path = folder / "truncated.mp4"
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def header_only_mp4(folder: Path) -> Path:
    """ftyp + moov of a faststart mp4, no media data: the index promises 2 s that are not there."""
    data = _video(folder / ".header-src.mp4", faststart=True).read_bytes()
    end = next(off + size for kind, off, size in _atoms(data) if kind == b"moov")
    path = folder / "header_only.mp4"
    path.write_bytes(data[:end])
    return path


def video_without_audio(folder: Path) -> Path:
    return _video(folder / "no_audio.mp4", audio=False)


def audio_without_video(folder: Path) -> Path:
    path = folder / "audio_only.m4a"
    _ffmpeg("-f", "lavfi", "-i", f"sine=f=440:d={SECONDS}", "-c:a", "aac", "-b:a", "64k", str(path))
    return path


def pure_silence(folder: Path) -> Path:
    path = folder / "silence.wav"
    _ffmpeg("-f", "lavfi", "-i", f"anullsrc=r=16000:cl=mono:d={SECONDS}", "-c:a", "pcm_s16le", str(path))
    return path


def one_ms_audio(folder: Path) -> Path:
    path = folder / "one_ms.wav"
    _ffmpeg("-f", "lavfi", "-i", "sine=f=440:r=16000:d=0.001", "-c:a", "pcm_s16le", str(path))
    return path


def claims_three_hours(folder: Path) -> Path:
    """A 2 s, ~20 KB mp4 whose movie header (mvhd) says it lasts 3 hours."""
    data = bytearray(_video(folder / ".3h-src.mp4", faststart=True).read_bytes())
    at = data.find(b"mvhd")
    assert at > 0 and data[at + 4] == 0, "expected a version-0 mvhd"
    timescale = struct.unpack(">I", data[at + 16 : at + 20])[0]
    struct.pack_into(">I", data, at + 20, 3 * 3600 * timescale)
    path = folder / "claims_3h.mp4"
    path.write_bytes(bytes(data))
    return path


def unsupported_codec(folder: Path) -> Path:
    """A Matroska audio track whose CodecID (``A_ZZZ``) no decoder knows."""
    src = folder / ".codec-src.mkv"
    _ffmpeg("-f", "lavfi", "-i", f"sine=f=440:d={SECONDS}", "-c:a", "aac", str(src))
    data = bytearray(src.read_bytes())
    at = data.find(b"A_AAC")
    assert at > 0
    data[at : at + 5] = b"A_ZZZ"
    path = folder / "unknown_codec.mkv"
    path.write_bytes(bytes(data))
    return path


def huge_dimensions(folder: Path) -> Path:
    """A ~130 KB Matroska file whose raw video track claims 16000x16000 pixels (256 Mpx a frame)."""
    src = folder / ".huge-src.mkv"
    _ffmpeg("-f", "lavfi", "-i", "color=c=navy:s=256x256:r=5:d=0.4", "-f", "lavfi", "-i", "sine=f=440:d=0.4",
            "-c:v", "rawvideo", "-pix_fmt", "gray", "-c:a", "aac", str(src))  # fmt: skip
    data = bytearray(src.read_bytes())
    for element in (b"\xb0\x82\x01\x00", b"\xba\x82\x01\x00"):  # PixelWidth, PixelHeight = 256 (2-byte values)
        at = data.find(element)
        assert at > 0
        data[at + 2 : at + 4] = struct.pack(">H", 16000)
    path = folder / "huge_dims.mkv"
    path.write_bytes(bytes(data))
    return path


def hls_local_file(folder: Path, target: str = "/etc/passwd") -> Path:
    """An HLS playlist (uploaded as .mp4) whose one segment is a file elsewhere on the server."""
    path = folder / "playlist_local.mp4"
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n", encoding="utf-8")
    return path


def hls_url(folder: Path, url: str = "http://127.0.0.1:9/segment.ts") -> Path:
    path = folder / "playlist_url.m3u8"
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{url}\n#EXT-X-ENDLIST\n", encoding="utf-8")
    return path


def concat_local_file(folder: Path, target: str = "/etc/passwd") -> Path:
    path = folder / "concat.ffconcat"
    path.write_text(f"ffconcat version 1.0\nfile '{target}'\n", encoding="utf-8")
    return path


def concat_url(folder: Path, url: str = "http://127.0.0.1:9/segment.ts") -> Path:
    path = folder / "concat_url.txt"
    path.write_text(f"ffconcat version 1.0\nfile '{url}'\n", encoding="utf-8")
    return path


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "good": good_video,
    "zero_bytes": zero_bytes,
    "text_as_mp4": text_as_mp4,
    "truncated_mp4": truncated_mp4,
    "header_only_mp4": header_only_mp4,
    "video_without_audio": video_without_audio,
    "audio_without_video": audio_without_video,
    "pure_silence": pure_silence,
    "one_ms_audio": one_ms_audio,
    "claims_three_hours": claims_three_hours,
    "unsupported_codec": unsupported_codec,
    "huge_dimensions": huge_dimensions,
    "hls_local_file": hls_local_file,
    "hls_url": hls_url,
    "concat_local_file": concat_local_file,
    "concat_url": concat_url,
}


def build(folder: Path) -> dict[str, Path]:
    """Write every corpus file into ``folder``; returns name → path."""
    folder.mkdir(parents=True, exist_ok=True)
    return {name: make(folder) for name, make in BUILDERS.items()}


# File names a client may send (the content is ``good``): each must be stored under a generated id.
HOSTILE_NAMES: dict[str, str] = {
    "dot_dot_slash": "../../../../etc/cron.d/evil.mp4",
    "nul_byte": "clip\x00.sh.mp4",
    "three_hundred_chars": "a" * 296 + ".mp4",
    "rtl_override": "clip\u202e4pm.exe",
    "rtl_arabic": "\u0641\u064a\u062f\u064a\u0648.mp4",
    "emoji": "\U0001f3ac\U0001f525 clip.mp4",
    "windows_path": "C:\\Windows\\System32\\clip.mp4",
    "only_dots": "...",
}
