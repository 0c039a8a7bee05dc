"""Speech recognition: faster-whisper with its bundled Silero VAD and word timestamps."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from configs.settings import ASRSettings
from pipelines import models
from pipelines.errors import ModelError
from pipelines.languages import normalize_language
from pipelines.schema import Segment, Transcript, Word

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

logger = logging.getLogger(__name__)


class Recognizer(Protocol):
    """Turns 16 kHz mono audio into a Transcript."""

    name: str

    def __call__(self, audio: str | Path | np.ndarray, *, language: str | None = None) -> Transcript:
        """Transcribe ``audio`` (a path or float32 16 kHz samples). ``language=None`` detects it.

        Raises ModelError when the model cannot run.
        """
        ...


def pick_device(device: str, compute_type: str) -> tuple[str, str]:
    """Resolve 'auto' to (cuda, float16) when a CUDA device is visible, else (cpu, int8)."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


class WhisperASR:
    """The ASR stage. ``model`` may be injected (a loaded WhisperModel) for tests and Serve."""

    def __init__(
        self, settings: ASRSettings, models_dir: Path, model: WhisperModel | None = None, *, task: str = "transcribe"
    ) -> None:
        """``task="translate"`` runs Whisper's own speech-to-English translation instead of transcription."""
        self.settings = settings
        self.task = task
        self.model_spec = models.resolve(settings.model, models_dir)
        self.device, self.compute_type = pick_device(settings.device, settings.compute_type)
        self.name = f"faster-whisper:{settings.model}"
        self.model = model if model is not None else self._load()
        self.engine = self._engine()

    def _engine(self) -> Any:
        """The object whose ``transcribe`` we call: batched over VAD segments when VAD is on (several
        times faster on CPU as well as GPU), else the plain model."""
        if self.settings.batch_size > 0 and self.settings.vad_filter:
            from faster_whisper import BatchedInferencePipeline

            return BatchedInferencePipeline(self.model)
        return self.model

    def _load(self) -> WhisperModel:
        from faster_whisper import WhisperModel

        threads = self.settings.cpu_threads or (os.cpu_count() or 1)
        logger.info("loading ASR model %s on %s/%s", self.model_spec, self.device, self.compute_type)
        try:
            return WhisperModel(self.model_spec, device=self.device, compute_type=self.compute_type, cpu_threads=threads)
        except Exception as exc:  # faster-whisper raises plain RuntimeError/ValueError/OSError
            raise ModelError(f"cannot load ASR model {self.settings.model!r}: {exc}") from exc

    def transcribe_kwargs(self, language: str | None) -> dict[str, object]:
        """The exact arguments given to ``self.engine.transcribe`` (shared with the overhead benchmark)."""
        kwargs: dict[str, object] = {
            "language": normalize_language(language) if language else None,
            "beam_size": self.settings.beam_size,
            "word_timestamps": True,
            "vad_filter": self.settings.vad_filter,
            "vad_parameters": {"min_silence_duration_ms": self.settings.min_silence_ms},
            "condition_on_previous_text": False,
            "task": self.task,
        }
        if self.engine is not self.model:
            kwargs["batch_size"] = self.settings.batch_size
        return kwargs

    def __call__(self, audio: str | Path | np.ndarray, *, language: str | None = None) -> Transcript:
        header, segments = self.stream(audio, language=language)
        return Transcript(**{**header, "segments": tuple(segments)})

    def stream(
        self, audio: str | Path | np.ndarray, *, language: str | None = None
    ) -> tuple[dict[str, Any], Iterator[Segment]]:
        """``__call__`` lazily: the transcript's fields but its segments (``language``, ``language_probability``,
        ``duration_s``, known once the language is detected) and its segments as faster-whisper decodes them.
        ``Transcript(**header, segments=tuple(segments))`` is what ``__call__`` returns. Model errors raise from
        either call; stopping early (closing the iterator) stops the decoding at its next segment."""
        source = str(audio) if isinstance(audio, Path) else audio
        segments_iter, info = self.engine.transcribe(source, **self.transcribe_kwargs(language))
        header: dict[str, Any] = {
            "language": info.language,
            "language_probability": round(float(info.language_probability), 4) if not language else 1.0,
            "duration_s": round(float(info.duration), 3),
        }
        segments = (
            Segment(
                start_s=round(float(seg.start), 3),
                end_s=round(float(seg.end), 3),
                text=seg.text.strip(),
                words=tuple(
                    Word(round(float(w.start), 3), round(float(w.end), 3), w.word, round(float(w.probability), 4)) for w in seg.words or ()
                ),
            )
            for seg in segments_iter
        )
        return header, segments
