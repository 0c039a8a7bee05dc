"""Muxing: the final mp4 with the video, the audio tracks and the subtitle tracks.

The video is copied unless subtitles are burnt in (or the codec can't live in mp4), audio is
AAC with the first track default, subtitles are mov_text. Each track carries an ISO 639-2
language tag and a title. The output is written to a temp file and renamed into place.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import BurnInNeedsVideo, MediaError, NoAudioStream
from pipelines.fileio import atomic_path
from pipelines.media import run_ffmpeg
from pipelines.schema import MediaInfo

logger = logging.getLogger(__name__)

AUDIO_BITRATE = "160k"
# Video codecs the mp4 muxer cannot hold; they are re-encoded straight away.
NOT_MP4_VIDEO = frozenset(
    {"theora", "msmpeg4v1", "msmpeg4v2", "msmpeg4v3", "wmv1", "wmv2", "wmv3", "flv1", "vp6", "vp6f", "vp6a",
     "rv10", "rv20", "rv30", "rv40", "cinepak", "indeo3", "indeo5", "svq1", "svq3", "h261", "ffv1", "huffyuv",
     "rawvideo", "dvvideo", "prores", "dnxhd", "snow", "vp8"}
)  # fmt: skip

# ISO 639-1 -> ISO 639-2/T, the form mp4 language tags use.
ISO639_2: dict[str, str] = {
    "af": "afr", "am": "amh", "ar": "ara", "as": "asm", "az": "aze", "ba": "bak", "be": "bel",
    "bg": "bul", "bn": "ben", "bo": "bod", "br": "bre", "bs": "bos", "ca": "cat", "cs": "ces",
    "cy": "cym", "da": "dan", "de": "deu", "el": "ell", "en": "eng", "eo": "epo", "es": "spa",
    "et": "est", "eu": "eus", "fa": "fas", "fi": "fin", "fo": "fao", "fr": "fra", "ga": "gle",
    "gd": "gla", "gl": "glg", "gu": "guj", "ha": "hau", "he": "heb", "hi": "hin", "hr": "hrv",
    "ht": "hat", "hu": "hun", "hy": "hye", "id": "ind", "is": "isl", "it": "ita", "ja": "jpn",
    "jw": "jav", "jv": "jav", "ka": "kat", "kk": "kaz", "km": "khm", "kn": "kan", "ko": "kor",
    "ku": "kur", "ky": "kir", "la": "lat", "lb": "ltz", "ln": "lin", "lo": "lao", "lt": "lit",
    "lv": "lav", "mg": "mlg", "mi": "mri", "mk": "mkd", "ml": "mal", "mn": "mon", "mr": "mar",
    "ms": "msa", "mt": "mlt", "my": "mya", "nb": "nob", "ne": "nep", "nl": "nld", "nn": "nno",
    "no": "nor", "oc": "oci", "pa": "pan", "pl": "pol", "ps": "pus", "pt": "por", "ro": "ron",
    "ru": "rus", "sa": "san", "sd": "snd", "si": "sin", "sk": "slk", "sl": "slv", "sn": "sna",
    "so": "som", "sq": "sqi", "sr": "srp", "su": "sun", "sv": "swe", "sw": "swa", "ta": "tam",
    "te": "tel", "tg": "tgk", "th": "tha", "tk": "tuk", "tl": "tgl", "tr": "tur", "tt": "tat",
    "ug": "uig", "uk": "ukr", "ur": "urd", "uz": "uzb", "vi": "vie", "yi": "yid", "yo": "yor",
    "zh": "zho", "zu": "zul", "haw": "haw", "yue": "yue",
}  # fmt: skip


@dataclass(frozen=True)
class AudioTrack:
    """One audio track of the output. ``path`` None means the input's own first audio stream."""

    path: Path | None
    language: str
    title: str


@dataclass(frozen=True)
class SubtitleTrack:
    """One subtitle track of the output, from an SRT file."""

    path: Path
    language: str
    title: str


def iso639_2(language: str) -> str:
    """The ISO 639-2 tag for an ISO 639-1 code (``ru`` -> ``rus``); ``und`` when unknown."""
    key = language.strip().lower().replace("_", "-").split("-")[0]
    if len(key) == 3 and key not in ISO639_2:
        return key  # already a three-letter code
    return ISO639_2.get(key, "und")


def filter_path(path: Path) -> str:
    """Escape a path for use as a filter option value inside an ffmpeg filtergraph."""
    value = str(path)
    for ch in ("\\", "'", ":"):  # option-value level
        value = value.replace(ch, "\\" + ch)
    for ch in ("\\", "'", "[", "]", ",", ";"):  # filtergraph level
        value = value.replace(ch, "\\" + ch)
    return value


def _has_cues(path: Path) -> bool:
    return path.is_file() and bool(path.read_text(encoding="utf-8", errors="replace").strip())


def mux(
    info: MediaInfo,
    *,
    out_path: Path,
    audio_tracks: Sequence[AudioTrack],
    subtitles: Sequence[SubtitleTrack],
    burn_in: Path | None = None,
) -> Path:
    """Write ``out_path`` (mp4, exactly ``info.duration_s`` long) and return it.

    Raises BurnInNeedsVideo for ``burn_in`` on an audio-only input, NoAudioStream when a track
    asks for the input's audio and it has none, MediaError when ffmpeg fails. Empty or missing
    SRT files are left out (ffmpeg cannot read an empty SRT) with a warning.
    """
    if burn_in is not None and not info.has_video:
        raise BurnInNeedsVideo(f"burning subtitles in needs a video stream; {Path(info.path).name} has none")
    if any(track.path is None for track in audio_tracks) and not info.has_audio:
        raise NoAudioStream(f"the input has no audio stream to keep: {Path(info.path).name}")
    subs = [s for s in subtitles if _has_cues(Path(s.path))]
    for s in subtitles:
        if s not in subs:
            logger.warning("subtitle track %r (%s) is empty or missing; left out", s.title, s.path)
    if burn_in is not None and not _has_cues(Path(burn_in)):
        logger.warning("nothing to burn in (%s is empty); the video is copied", burn_in)
        burn_in = None
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".mp4") as tmp:
        _run_mux(info, tmp, audio_tracks, subs, burn_in)
    logger.info("muxed %s: %d audio, %d subtitle tracks", out.name, len(audio_tracks), len(subs))
    return out


def _run_mux(
    info: MediaInfo, tmp: Path, audio: Sequence[AudioTrack], subs: Sequence[SubtitleTrack], burn_in: Path | None
) -> None:
    reencode = burn_in is not None or (info.video_codec or "") in NOT_MP4_VIDEO
    try:
        run_ffmpeg(build_args(info, tmp, audio, subs, burn_in=burn_in, reencode=reencode), what="mux")
    except MediaError as exc:
        if reencode or not info.has_video:
            raise
        logger.warning("copying the %s video into mp4 failed (%s); re-encoding to h264", info.video_codec, exc)
        run_ffmpeg(build_args(info, tmp, audio, subs, burn_in=None, reencode=True), what="mux (re-encode)")


def build_args(
    info: MediaInfo,
    out: Path,
    audio: Sequence[AudioTrack],
    subs: Sequence[SubtitleTrack],
    *,
    burn_in: Path | None,
    reencode: bool,
) -> list[str]:
    """The ffmpeg argument list (without 'ffmpeg') for one mux."""
    args = ["-i", info.path]
    maps: list[str] = []
    if info.has_video:
        maps += ["-map", "0:v:0"]
    next_input = 1
    for track in audio:
        if track.path is None:
            maps += ["-map", "0:a:0"]
        else:
            args += ["-i", str(track.path)]
            maps += ["-map", f"{next_input}:a:0"]
            next_input += 1
    for sub in subs:
        args += ["-i", str(sub.path)]
        maps += ["-map", f"{next_input}:s:0"]
        next_input += 1
    args += maps + ["-map_metadata", "0", "-map_chapters", "-1"]
    args += _video_args(burn_in, reencode) if info.has_video else ["-vn"]
    args += _audio_args(audio) + _subtitle_args(subs)
    args += ["-t", f"{info.duration_s:.3f}", "-movflags", "+faststart", "-f", "mp4", str(out)]
    return args


def _video_args(burn_in: Path | None, reencode: bool) -> list[str]:
    if not reencode:
        return ["-c:v", "copy"]
    # libx264 with yuv420p needs even dimensions.
    filters = ["scale=trunc(iw/2)*2:trunc(ih/2)*2"]
    if burn_in is not None:
        filters.append(f"subtitles=filename={filter_path(burn_in)}:charenc=UTF-8")
    return ["-vf", ",".join(filters), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"]


def _audio_args(audio: Sequence[AudioTrack]) -> list[str]:
    if not audio:
        return ["-an"]
    # apad + -t: every audio track lasts exactly the media's duration, even a short one.
    args = ["-c:a", "aac", "-b:a", AUDIO_BITRATE, "-filter:a", "apad"]
    for i, track in enumerate(audio):
        args += _tags(f"a:{i}", track.language, track.title)
        args += [f"-disposition:a:{i}", "default" if i == 0 else "0"]
    return args


def _subtitle_args(subs: Sequence[SubtitleTrack]) -> list[str]:
    if not subs:
        return ["-sn"]
    args = ["-c:s", "mov_text"]
    for i, sub in enumerate(subs):
        args += _tags(f"s:{i}", sub.language, sub.title)
        args += [f"-disposition:s:{i}", "0"]
    return args


def _tags(stream: str, language: str, title: str) -> list[str]:
    # The mp4 muxer drops a stream's 'title'; players show its handler name instead.
    spec = f"-metadata:s:{stream}"
    return [spec, f"language={iso639_2(language)}", spec, f"title={title}", spec, f"handler_name={title}"]
