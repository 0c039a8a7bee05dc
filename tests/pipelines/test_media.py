from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipelines import media
from pipelines.errors import InputNotFound, InvalidMedia, MediaTooLong, NoAudioStream
from tests.conftest import make_video


def test_probe_video(jfk_video: Path) -> None:
    info = media.probe(jfk_video)
    assert info.has_video and info.has_audio
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert abs(info.duration_s - 13.0) < 0.1
    assert (info.width, info.height) == (320, 240)


def test_extract_audio_is_16k_mono(jfk_video: Path, tmp_path: Path) -> None:
    wav = media.extract_audio(media.probe(jfk_video), tmp_path / "a.wav")
    samples, rate = media.read_wav(wav)
    assert rate == 16000 and samples.ndim == 1
    assert abs(len(samples) / rate - 13.0) < 0.1
    assert float(np.abs(samples).max()) > 0.1  # real speech, not silence
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temp file left


def test_decode_audio_stereo(jfk_flac: Path) -> None:
    stereo = media.decode_audio(jfk_flac, sample_rate_hz=48000, channels=2)
    assert stereo.shape[1] == 2 and abs(stereo.shape[0] / 48000 - 11.0) < 0.1


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"", InvalidMedia), (b"hello, this is plain text\n" * 20, InvalidMedia)],
    ids=["zero-bytes", "text-renamed-mp4"],
)
def test_probe_rejects_non_media(tmp_path: Path, content: bytes, error: type[Exception]) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(error) as exc:
        media.probe(bad)
    assert "bad.mp4" in str(exc.value) and "\n" not in str(exc.value)


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound):
        media.probe(tmp_path / "nope.mp4")


def test_truncated_mp4_is_invalid(jfk_video: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(jfk_video.read_bytes()[:4000])
    with pytest.raises(InvalidMedia):
        info = media.probe(cut)
        media.extract_audio(info, tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_video_without_audio(tmp_path: Path) -> None:
    silent = make_video(tmp_path / "noaudio.mp4", None, 2.0)
    info = media.probe(silent)
    assert info.has_video and not info.has_audio
    with pytest.raises(NoAudioStream):
        media.extract_audio(info, tmp_path / "x.wav")


def lying_mp3(folder: Path) -> Path:
    """An mp3 without a Xing header whose first second is at 320 kb/s and the next 30 s at 32 kb/s: ffprobe
    estimates its length from the first frames' bitrate (about 5 s), ffmpeg decodes all 31 s."""
    parts = []
    for name, seconds, rate in (("a", 1, "320k"), ("b", 30, "32k")):
        part = folder / f"{name}.mp3"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-ac", "1",
                        "-c:a", "libmp3lame", "-b:a", rate, "-write_xing", "0", "-id3v2_version", "0", str(part)],
                       check=True)  # fmt: skip
        parts.append(part.read_bytes())
    out = folder / "liar.mp3"
    out.write_bytes(b"".join(parts))
    return out


def test_probe_refuses_media_longer_than_max_duration(jfk_video: Path) -> None:
    assert media.probe(jfk_video, max_duration_s=13.5).duration_s < 13.5
    with pytest.raises(MediaTooLong, match=r"jfk.mp4 lasts 0:00:13 .*at most 0:00:10") as exc:
        media.probe(jfk_video, max_duration_s=10)
    assert exc.value.http_status == 413 and str(jfk_video.parent) not in exc.value.message


def test_extract_audio_checks_what_is_decoded_not_what_the_header_claims(tmp_path: Path) -> None:
    liar = lying_mp3(tmp_path)
    info = media.probe(liar, max_duration_s=10)
    assert info.duration_s < 10  # the header's estimate passes the probe-time check
    with pytest.raises(MediaTooLong, match="liar.mp3 decodes to more than"):
        media.extract_audio(info, tmp_path / "a.wav", max_duration_s=10)
    assert not (tmp_path / "a.wav").exists()
    wav = media.extract_audio(info, tmp_path / "b.wav", max_duration_s=40)  # under the cap: all of it
    assert abs(len(media.read_wav(wav)[0]) / 16000 - 31.0) < 0.5


def test_partial_duration_of_a_file_still_being_written(tmp_path: Path, long_mov: Path) -> None:
    """The fetch stage's duration check (issue 18): the first MiB of a file with its index first already says
    30 s; text, or a file cut before its index, says nothing (and raises nothing)."""
    part = tmp_path / "long.mov.part"
    part.write_bytes(long_mov.read_bytes()[: 1 << 20])
    assert media.partial_duration(part) == pytest.approx(30.0, abs=0.1)
    junk = tmp_path / "junk.part"
    junk.write_text("not media\n")
    assert media.partial_duration(junk) is None and media.partial_duration(tmp_path / "missing") is None
