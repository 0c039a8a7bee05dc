from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines import mux as mux_module
from pipelines.media import probe, write_wav
from pipelines.mux import AudioTrack, BurnInNeedsVideo, SubtitleTrack, filter_path, iso639_2, mux

SRT_RU = (
    "1\n00:00:00,500 --> 00:00:02,500\nИ вот, мои сограждане,\n\n2\n00:00:03,000 --> 00:00:05,000\nне спрашивайте.\n"
)
SRT_EN = (
    "1\n00:00:00,500 --> 00:00:02,500\nAnd so, my fellow Americans,\n\n2\n00:00:03,000 --> 00:00:05,000\nask not.\n"
)


def _ffprobe(path: Path, *extra: str) -> dict[str, Any]:
    cmd = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", *extra, str(path)]
    return json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)


def _streams(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in data["streams"] if s["codec_type"] == kind]


def _frame(path: Path, at_s: float) -> float:
    """Mean brightness of the grey frame at ``at_s``."""
    cmd = ["ffmpeg", "-v", "error", "-ss", str(at_s), "-i", str(path), "-frames:v", "1"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return float(np.frombuffer(raw, dtype=np.uint8).mean())


@pytest.fixture()
def tracks(tmp_path: Path) -> tuple[list[AudioTrack], list[SubtitleTrack]]:
    rate = 48000
    t = np.arange(int(12.0 * rate)) / rate  # shorter than the video on purpose: padded to its length
    tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    dub = write_wav(tmp_path / "dub.wav", np.stack([tone, tone], axis=1), rate)
    (tmp_path / "ru.srt").write_text(SRT_RU, encoding="utf-8")
    (tmp_path / "en.srt").write_text(SRT_EN, encoding="utf-8")
    audio = [AudioTrack(dub, "ru", "Dubbed"), AudioTrack(None, "en", "Original")]
    subs = [
        SubtitleTrack(tmp_path / "ru.srt", "ru", "Translation"),
        SubtitleTrack(tmp_path / "en.srt", "en", "Original"),
    ]
    return audio, subs


def test_mux_copies_video_with_tracks(
    jfk_video: Path, tmp_path: Path, tracks: tuple[list[AudioTrack], list[SubtitleTrack]]
) -> None:
    info = probe(jfk_video)
    out = mux(info, out_path=tmp_path / "out" / "jfk.ru.mp4", audio_tracks=tracks[0], subtitles=tracks[1])
    assert [p.name for p in out.parent.iterdir()] == ["jfk.ru.mp4"]  # no temp file left
    data = _ffprobe(out, "-count_packets")
    src = _ffprobe(jfk_video, "-count_packets")
    [video], [src_video] = _streams(data, "video"), _streams(src, "video")
    assert video["codec_name"] == src_video["codec_name"] == "h264"
    assert video["nb_read_packets"] == src_video["nb_read_packets"]
    audio = _streams(data, "audio")
    assert [a["codec_name"] for a in audio] == ["aac", "aac"]
    assert [a["tags"]["language"] for a in audio] == ["rus", "eng"]
    assert [a["tags"]["handler_name"] for a in audio] == ["Dubbed", "Original"]
    assert [a["disposition"]["default"] for a in audio] == [1, 0]
    subs = _streams(data, "subtitle")
    assert [s["codec_name"] for s in subs] == ["mov_text", "mov_text"]
    assert [s["tags"]["language"] for s in subs] == ["rus", "eng"]
    assert [s["tags"]["handler_name"] for s in subs] == ["Translation", "Original"]
    assert abs(float(data["format"]["duration"]) - info.duration_s) < 0.1
    for a in audio:
        assert abs(float(a["duration"]) - info.duration_s) < 0.1


def test_mux_burn_in_reencodes(
    jfk_video: Path, tmp_path: Path, tracks: tuple[list[AudioTrack], list[SubtitleTrack]]
) -> None:
    info = probe(jfk_video)
    odd = tmp_path / "it's a: [weird], name;.srt"  # must survive filtergraph escaping
    odd.write_text(SRT_EN, encoding="utf-8")
    out = mux(info, out_path=tmp_path / "burnt.mp4", audio_tracks=tracks[0][:1], subtitles=[], burn_in=odd)
    data = _ffprobe(out)
    [video] = _streams(data, "video")
    assert video["codec_name"] == "h264" and len(_streams(data, "audio")) == 1
    assert _frame(out, 1.0) != _frame(jfk_video, 1.0)  # the text is drawn on the picture
    assert _frame(out, 10.0) == pytest.approx(_frame(jfk_video, 10.0), abs=2.0)  # no cue at 10 s
    assert not _streams(data, "subtitle")
    assert abs(float(data["format"]["duration"]) - info.duration_s) < 0.1


def test_mux_audio_only(jfk_flac: Path, tmp_path: Path, tracks: tuple[list[AudioTrack], list[SubtitleTrack]]) -> None:
    info = probe(jfk_flac)
    out = mux(info, out_path=tmp_path / "a.mp4", audio_tracks=tracks[0], subtitles=tracks[1])
    data = _ffprobe(out)
    assert not _streams(data, "video") and len(_streams(data, "audio")) == 2
    assert len(_streams(data, "subtitle")) == 2
    assert abs(float(data["format"]["duration"]) - info.duration_s) < 0.1
    with pytest.raises(BurnInNeedsVideo, match="needs a video stream"):
        mux(info, out_path=tmp_path / "b.mp4", audio_tracks=tracks[0], subtitles=[], burn_in=tracks[1][0].path)


@pytest.mark.parametrize("known", [True, False], ids=["known-codec", "copy-fails-then-retry"])
def test_mux_reencodes_codec_mp4_cannot_hold(
    tmp_path: Path, jfk_flac: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, known: bool
) -> None:
    if not known:
        monkeypatch.setattr(mux_module, "NOT_MP4_VIDEO", frozenset())
    src = tmp_path / "in.ogv"
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=160x120:r=10:d=3"]
    cmd += ["-i", str(jfk_flac), "-t", "3", "-c:v", "libtheora", "-c:a", "libvorbis", str(src)]
    subprocess.run(cmd, check=True)
    info = probe(src)
    assert info.video_codec == "theora"
    out = mux(info, out_path=tmp_path / "t.mp4", audio_tracks=[AudioTrack(None, "en", "Original")], subtitles=[])
    data = _ffprobe(out)
    assert _streams(data, "video")[0]["codec_name"] == "h264"
    assert ("re-encoding to h264" in caplog.text) is not known
    assert abs(float(data["format"]["duration"]) - info.duration_s) < 0.15


def test_empty_subtitles_are_left_out(jfk_flac: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.srt").write_text("", encoding="utf-8")
    info = probe(jfk_flac)
    subs = [SubtitleTrack(tmp_path / "empty.srt", "ru", "Translation")]
    out = mux(info, out_path=tmp_path / "e.mp4", audio_tracks=[AudioTrack(None, "en", "Original")], subtitles=subs)
    assert not _streams(_ffprobe(out), "subtitle")


def test_language_tags_and_escaping() -> None:
    assert [iso639_2(c) for c in ("ru", "es", "en", "zh", "de", "pt-BR", "fra", "??")] == [
        "rus", "spa", "eng", "zho", "deu", "por", "fra", "und",
    ]  # fmt: skip
    assert filter_path(Path("/a/it's:b,c")) == "/a/it\\\\\\'s\\\\:b\\,c"
