"""Domain errors. Entrypoints map these to HTTP statuses, JSON-RPC codes and CLI exit codes in one place each."""

from __future__ import annotations


class VTError(Exception):
    """Base of every expected error. ``code`` is a stable machine-readable name."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class InputNotFound(VTError):
    code = "input_not_found"
    http_status = 404


class InvalidMedia(VTError):
    """The input is not media ffmpeg can read (or is truncated/corrupt)."""

    code = "invalid_media"
    http_status = 415


class NoAudioStream(VTError):
    code = "no_audio_stream"
    http_status = 422


class MediaTooLong(VTError):
    """The input lasts (or decodes to) more than the ``MAX_DURATION`` setting allows."""

    code = "media_too_long"
    http_status = 413


class UnknownLanguage(VTError):
    code = "unknown_language"
    http_status = 422


class MediaError(VTError):
    """ffmpeg failed on an input that probed fine; ``detail`` carries ffmpeg's stderr."""

    code = "media_error"
    http_status = 500


class ModelError(VTError):
    """A model is missing, corrupt or cannot be loaded."""

    code = "model_error"
    http_status = 503


class BackendUnavailable(ModelError):
    code = "backend_unavailable"


class TranslationFailed(VTError):
    code = "translation_failed"
    http_status = 502


class JobCancelled(VTError):
    code = "cancelled"
    http_status = 409


class BurnInNeedsVideo(VTError):
    """Burning subtitles in was asked for an input without a video stream."""

    code = "burn_in_needs_video"
    http_status = 422


class InvalidGlossary(VTError):
    """A glossary (file, form field or JSON text) that is neither a JSON object of strings nor 'term = translation' lines."""

    code = "invalid_glossary"
    http_status = 422


class URLRefused(VTError):
    """A URL input the server will not fetch: not http(s), or its host resolves to a loopback, link-local,
    private, multicast or otherwise non-public address that ``fetch.allow_hosts`` does not name (checked
    before the download and again on every connection, redirects included)."""

    code = "url_refused"
    http_status = 400


class DownloadTooLarge(VTError):
    """A URL input whose body passed ``MAX_FILE_SIZE`` bytes (the download stopped there)."""

    code = "download_too_large"
    http_status = 413


class FetchTimeout(VTError):
    """A URL input that did not finish within ``fetch.timeout_s`` or came slower than ``fetch.min_rate_bytes_s``."""

    code = "fetch_timeout"
    http_status = 408


class FetchFailed(VTError):
    """A URL input that gave no media (unreachable, an HTTP error, a page yt-dlp cannot read)."""

    code = "fetch_failed"
    http_status = 422


class InvalidSubtitles(VTError):
    """A subtitle file (SRT, WebVTT, ASS) that does not parse; the message names the line."""

    code = "invalid_subtitles"
    http_status = 422


class InvalidVoice(VTError):
    """A job's voice (``voices`` of a job request, ``--voice``) is unknown, not installed, an opt-in voice not
    installed on purpose, or of another language: refused before any work."""

    code = "invalid_voice"
    http_status = 422


class SeparationUnavailable(VTError):
    """``mix.background = separate`` without the separation model pulled (refused before any work)."""

    code = "separation_unavailable"
    http_status = 422


class InvalidSpeakers(VTError):
    """A speaker count out of range (0, 500, min above max) or a per-speaker voice that is not a voice label."""

    code = "invalid_speakers"
    http_status = 422
