"""Handle adapters: the pipeline's stage protocols over Serve deployment handles.

``Pipeline(settings, asr=HandleASR(h), translator=HandleTranslator(h), tts=HandleTTS(h),
separator=HandleSeparator(h), diarizer=HandleDiarizer(h))`` runs a job through the model deployments
(``serve_app.deployments.model_deployments``). Every call is resent when the replica died under it (tenacity);
any other error propagates at once. Audio travels as numpy samples (zero-copy through Ray's object store), never
as a path, so a replica may run on another node.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_attempt, wait_exponential

from pipelines.batch.chunking import VAD_WINDOW_S, transcribe_file
from pipelines.schema import Clip, Sentence, Transcript, Translation

if TYPE_CHECKING:
    from configs.settings import DiarizeSettings
    from pipelines.diarize import Diarization

logger = logging.getLogger(__name__)


def _wait(response: Any) -> Any:
    """A DeploymentResponse's result (called from worker threads, never on an event loop)."""
    return response.result()


# A replica that dies under a call (OOM, a crash, ray.kill) is replaced by Serve; the stage calls are pure
# functions of their arguments, so the adapters send the call again (to the new replica once it is up).
REPLICA_RETRIES = 3
REPLICA_RETRY_BACKOFF_S = 1.0


def _replica_died(exc: BaseException) -> bool:
    try:
        from ray.exceptions import RayActorError, RayTaskError
        from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError
    except ImportError:  # no Ray: handles are fakes, nothing to retry
        return False
    if isinstance(exc, RayTaskError):
        return isinstance(getattr(exc, "cause", None), RayActorError)
    return isinstance(exc, (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError))


def _call(method: Any, *args: Any) -> Any:
    """``method.remote(*args)``'s result, sent again (up to REPLICA_RETRIES times, backing off exponentially from
    REPLICA_RETRY_BACKOFF_S) when the replica died under it. Any other error propagates at once."""
    retrying = Retrying(
        stop=stop_after_attempt(REPLICA_RETRIES + 1),
        wait=wait_exponential(multiplier=REPLICA_RETRY_BACKOFF_S),
        retry=retry_if_exception(_replica_died),
        before_sleep=before_sleep_log(logger, logging.WARNING),
        reraise=True,
    )
    return retrying(lambda: _wait(method.remote(*args)))


class _HandleAdapter:
    """The adapters' base: a pipeline stage over a deployment handle; ``name`` is asked of the replica once."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._name: str | None = None

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = str(_call(self.handle.info)["name"])
        return self._name


class HandleASR(_HandleAdapter):
    """The pipeline's ``Recognizer`` over an ASRDeployment handle (the audio travels as samples, so the
    replica may run on another node). A WAV file longer than ``window_s`` seconds travels in chunks cut in its
    silences, read one at a time (``chunking.transcribe_file``): the object store never holds the whole file."""

    def __init__(self, handle: Any, *, window_s: float = VAD_WINDOW_S) -> None:
        super().__init__(handle)
        self.window_s = window_s

    def _recognize(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        return _call(self.handle.transcribe, audio, language)  # type: ignore[no-any-return]

    def __call__(self, audio: str | Path | np.ndarray, *, language: str | None = None) -> Transcript:
        if isinstance(audio, (str, Path)):  # the runner hands over its 16 kHz mono wav
            return transcribe_file(self._recognize, audio, language=language, max_s=self.window_s)
        return self._recognize(audio, language=language)


class HandleTranslator(_HandleAdapter):
    """The pipeline's ``Translator`` over a TranslatorDeployment handle."""

    def translate(
        self,
        sentences: Sequence[Sentence],
        *,
        source_language: str,
        target_language: str,
        glossary: Mapping[str, str] | None = None,
    ) -> list[Translation]:
        args = (list(sentences), source_language, target_language, dict(glossary or {}))
        return _call(self.handle.translate, *args)  # type: ignore[no-any-return]

    def shorten(self, text: str, *, target_language: str, max_chars: int) -> str | None:
        """A shorter rendering of ``text`` for the dub, or None (see ``LLMTranslator.shorten``)."""
        return _call(self.handle.shorten, text, target_language, max_chars)  # type: ignore[no-any-return]


class HandleTTS:
    """The pipeline's TTS stage over a TTSDeployment handle. ``synthesized_count`` is per calling thread."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._local = threading.local()

    @property
    def synthesized_count(self) -> int:
        return int(getattr(self._local, "count", 0))

    def voice_for(self, language: str) -> str:
        return _call(self.handle.voice_for, language)  # type: ignore[no-any-return]

    def __call__(self, translations: Sequence[Translation], language: str, voice: str | None = None) -> list[Clip]:
        clips, count = _call(self.handle.synthesize, list(translations), language, voice)
        self._local.count = count
        return clips  # type: ignore[no-any-return]


class HandleSeparator(_HandleAdapter):
    """The pipeline's ``Separator`` over a SeparatorDeployment handle. The input is decoded here a chunk at a time
    (``separate.write_background``); each overlapping chunk's samples go to a replica and come back as its
    background, which is cross-faded and written here: one chunk in flight, memory flat in the input's length."""

    def __call__(self, input_path: Path, out_path: Path, *, progress: Callable[[float], None] | None = None) -> Path:
        """See ``separate.Separator``: ``progress`` is called here, after each chunk comes back."""
        from pipelines.separate import write_background

        process = lambda x: _call(self.handle.separate, x)  # one chunk's background, from a replica
        return write_background(Path(input_path), Path(out_path), process, progress=progress)


class HandleDiarizer(_HandleAdapter):
    """The pipeline's ``DiarizationStage`` over a DiarizerDeployment handle. The runner's 16 kHz mono wav travels
    as int16 samples (half of float32's bytes; the stage holds the whole file's samples either way), and none when
    the count is known without listening (``diarize.needs_audio``)."""

    def __call__(
        self,
        wav: Path | np.ndarray,
        transcript: Transcript,
        *,
        speakers: int | None = None,
        settings: DiarizeSettings | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Diarization:
        """See ``diarize.DiarizationStage``; ``progress`` is not called (the work happens in the replica)."""
        from pipelines.diarize import needs_audio

        if isinstance(wav, np.ndarray):
            audio = wav
        elif settings is not None and not needs_audio(transcript, speakers, settings):
            audio = np.zeros(0, dtype=np.int16)
        else:
            audio = _pcm16(Path(wav))
        return _call(self.handle.diarize, audio, transcript, speakers, settings)  # type: ignore[no-any-return]


def _pcm16(wav: Path) -> np.ndarray:
    """A 16 kHz mono WAV's samples as int16. Raises ModelError at another rate."""
    import soundfile as sf

    from pipelines.diarize import SAMPLE_RATE_HZ
    from pipelines.errors import ModelError

    data, rate = sf.read(str(wav), dtype="int16", always_2d=False)
    if rate != SAMPLE_RATE_HZ:
        raise ModelError(f"diarization needs 16 kHz audio, got {rate} Hz")
    return np.asarray(data, dtype=np.int16).reshape(-1)
