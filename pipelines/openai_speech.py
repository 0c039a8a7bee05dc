"""``openai:<voice>`` voices: any OpenAI-compatible speech server (``POST <base_url>/audio/speech``).

A GPU box with a voice-cloning model, another VideoTranslator, OpenAI itself: whatever answers that route
with WAV or raw 16-bit PCM. Settings: ``tts.openai`` (base URL, model, API key, response format, timeouts,
retries). Transient failures (connection errors, timeouts, 429, 5xx) are retried with exponential backoff
(tenacity); what still fails is one clear line. ``check`` is the cheap reachability test (``GET
<base_url>/models``, short timeout) that ``TTSStage.voice_for`` runs once, before a job does any work.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import httpx
import numpy as np
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from pipelines.errors import BackendUnavailable, ModelError

if TYPE_CHECKING:
    from configs.settings import OpenAISpeechSettings

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class _Transient(Exception):
    """A failure worth retrying; ``message`` is what the user sees if retries run out."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _error_text(resp: httpx.Response) -> str:
    """The server's own message: OpenAI's ``{"error": {"message"}}``, this project's envelope, or the body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:200]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return str(body)[:200]


class OpenAISpeechSynthesizer:
    """One voice of an OpenAI-compatible speech server."""

    def __init__(self, voice: str, settings: OpenAISpeechSettings) -> None:
        if not voice.strip():
            raise ModelError("an openai: voice needs a name, e.g. 'openai:alloy'")
        self.voice = voice
        self.settings = settings
        self.name = f"openai:{voice}"
        self.sample_rate_hz = int(settings.pcm_sample_rate_hz)  # a WAV answer's header overrides it
        self.base_url = settings.base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url + "/",
            timeout=settings.timeout_s,
            headers={"Authorization": f"Bearer {settings.api_key}"},
        )

    def check(self) -> None:
        """Raise BackendUnavailable (unreachable) or ModelError (key refused) in one line; cheap and quick."""
        try:
            resp = self._client.get("models", timeout=self.settings.check_timeout_s)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"speech server {self.base_url} is not reachable ({type(exc).__name__}); check settings tts.openai.base_url"
            ) from exc
        if resp.status_code in (401, 403):
            raise ModelError(f"speech server {self.base_url} refused the API key (settings tts.openai.api_key)")

    def _post(self, text: str) -> bytes:
        payload = {
            "model": self.settings.model,
            "voice": self.voice,
            "input": text,
            "response_format": self.settings.response_format,
        }
        try:
            resp = self._client.post("audio/speech", json=payload)
        except httpx.HTTPError as exc:
            raise _Transient(f"speech server {self.base_url} failed: {type(exc).__name__}: {exc}") from exc
        if resp.status_code in RETRY_STATUS:
            raise _Transient(f"speech server {self.base_url} answered {resp.status_code}: {_error_text(resp)}")
        if resp.status_code >= 400:
            raise ModelError(
                f"speech server {self.base_url} refused voice {self.voice!r} ({resp.status_code}): {_error_text(resp)}"
            )
        return resp.content

    def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text`` on the server. Raises BackendUnavailable once retries run out, ModelError on a refusal."""
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_Transient),
                stop=stop_after_attempt(self.settings.max_retries + 1),
                wait=wait_exponential(multiplier=0.5, max=8.0),
                reraise=True,
            ):
                with attempt:
                    data = self._post(text)
        except _Transient as exc:
            raise BackendUnavailable(exc.message) from exc
        return self._decode(data)

    def _decode(self, data: bytes) -> np.ndarray:
        if self.settings.response_format == "pcm":
            if len(data) % 2:
                raise ModelError(f"speech server {self.base_url} sent {len(data)} bytes, not 16-bit PCM")
            return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        import soundfile as sf

        try:
            samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except RuntimeError as exc:  # soundfile.LibsndfileError: not audio libsndfile knows
            raise ModelError(f"speech server {self.base_url} sent no usable WAV ({len(data)} bytes)") from exc
        self.sample_rate_hz = int(rate)
        return np.asarray(samples.mean(axis=1), dtype=np.float32)
