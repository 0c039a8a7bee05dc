"""The overlapped stages of one job (``pipeline.overlap``): ASR → segment → translate → TTS as a chain of threads
(``pipelines.overlap``), so that a sentence is translated as soon as ASR has finished it and a line is spoken as
soon as it is translated.

The outputs are those of the run in turn: each stage streams by construction (``segment.iter_sentences`` is
``merge_sentences``, ``translate_stream`` is ``translate``, TTS is per line), the same caches are read and
written under the same keys, and the report differs only in its timings (each stage's busy seconds, which
now add up to more than the wall time). A stage that cannot stream (a Serve handle, a given or cached
transcript or translation) runs as before; the caller then takes the path in turn.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.cues import transcript_cues
from pipelines.errors import JobCancelled
from pipelines.overlap import StageClock, run_chain
from pipelines.schema import Clip, Sentence, Stage, Transcript, Translation, dump_translations
from pipelines.segment import iter_sentences

if TYPE_CHECKING:
    from pipelines.runner import _JobRun


@dataclass
class Front:
    """One target's translations and, in a dub, its clips and how many were synthesised (not cached)."""

    translations: list[Translation]
    spoken: tuple[list[Clip], int] | None = None


def stream_source(job: _JobRun, wav: Path, lang: str) -> tuple[Transcript, list[Sentence], Front] | None:
    """ASR, segment and the first target ``lang``'s translate (and TTS) overlapped: the transcript, the sentences
    and that target's ``Front``; sets ``job.source_cues`` as ``recognise`` does. None, having done nothing, when
    ASR does not run here (a transcript given or cached, source subtitles, given translations) or cannot stream."""
    if job.preset_transcript is not None or job.subtitles_path is not None or lang in job.preset_translations:
        return None
    if job.settings.diarize.enabled:  # speakers split sentences, so segmenting waits for the whole transcript
        return None
    stream = getattr(job.pipe.asr, "stream", None)
    if stream is None or job.known_transcript() is not None:
        return None
    dub = job.request.mode == "dub"
    names = [(Stage.ASR, None), (Stage.SEGMENT, None), (Stage.TRANSLATE, lang)] + ([(Stage.TTS, lang)] if dub else [])
    _announce(job, names)
    clock = StageClock()
    started = time.perf_counter()
    header, segments = stream(wav, language=job.source)  # VAD and language detection happen here
    clock.add(Stage.ASR.value, time.perf_counter() - started)
    src: str = header["language"]
    collected: list[Any] = []

    def recognised() -> Iterator[Any]:
        try:
            for segment in segments:
                collected.append(segment)
                yield segment
        finally:
            close = getattr(segments, "close", None)
            if close is not None:
                close()  # stopped early (an error, a cancel): faster-whisper stops decoding
        job.cache_transcript(Transcript(**header, segments=tuple(collected)))  # as soon as ASR is done (resume)

    sentences: list[Sentence] = []
    front = Front([])
    stages: list[tuple[str, Callable[[Iterator[Any]], Iterable[Any]]]] = [
        (Stage.SEGMENT.value, lambda items: _collect(iter_sentences(items), sentences)),
        (Stage.TRANSLATE.value, _translate_stage(job, src, lang, front.translations)),
    ]
    if dub:
        stages.append((Stage.TTS.value, _speak_stage(job, lang, front)))
    _drive(job, recognised(), stages, clock, Stage.ASR.value)
    transcript = Transcript(**header, segments=tuple(collected))
    check, job.source_cues = transcript_cues(transcript, media_end_s=job.info.duration_s)
    if check != sentences:  # cannot happen (iter_sentences is merge_sentences); never dub from other sentences
        raise RuntimeError("the streamed sentences differ from the transcript's")
    _finish(job, names[:-1] if dub else names)
    return transcript, sentences, front


def overlapped_front(job: _JobRun, sentences: list[Sentence], src: str, lang: str) -> Front | None:
    """Translate and speak ``lang`` side by side when the sentences are known (a later target, a cached
    transcript). None, having done nothing, when the translations are known or the translator cannot stream."""
    if job.known_translations(sentences, src, lang) is not None:
        return None
    if getattr(job.pipe.translator, "translate_stream", None) is None:
        return None
    names = [(Stage.TRANSLATE, lang), (Stage.TTS, lang)]
    _announce(job, names)
    front, clock = Front([]), StageClock()
    stages: list[tuple[str, Callable[[Iterator[Any]], Iterable[Any]]]] = [
        (Stage.TTS.value, _speak_stage(job, lang, front))
    ]
    _drive(
        job, _translate_stage(job, src, lang, front.translations)(iter(sentences)), stages, clock, Stage.TRANSLATE.value
    )
    _finish(job, names[:1])
    return front


def _drive(
    job: _JobRun,
    source: Iterable[Any],
    stages: Sequence[tuple[str, Callable[[Iterator[Any]], Iterable[Any]]]],
    clock: StageClock,
    source_name: str,
) -> None:
    maxsize = job.settings.pipeline.queue_size
    for _ in run_chain(
        source, *stages, source_name=source_name, maxsize=maxsize, should_cancel=job.should_cancel, clock=clock
    ):
        pass
    for name, seconds in clock.busy_s.items():
        job.timings.add(name, max(seconds, 0.0))


def _announce(job: _JobRun, names: Sequence[tuple[Stage, str | None]]) -> None:
    if job.should_cancel():
        raise JobCancelled("the job was cancelled")
    for stage, language in names:
        job.progress(stage.value, 0.0, language)


def _finish(job: _JobRun, names: Sequence[tuple[Stage, str | None]]) -> None:
    """Report the stages done (TTS is done later: the dub's fit and mix still belong to it)."""
    for stage, language in names:
        job.progress(stage.value, 1.0, language)


def _collect(items: Iterable[Any], into: list[Any]) -> Iterator[Any]:
    for item in items:
        into.append(item)
        yield item


def _translate_stage(
    job: _JobRun, src: str, lang: str, out: list[Translation]
) -> Callable[[Iterator[Sentence]], Iterator[list[Translation]]]:
    """Sentences in, lists of translations out (in order), as ``_JobRun.translate`` makes them (the same
    requests, the same cache entry); the translator is not touched when no sentence comes."""

    def stage(items: Iterator[Sentence]) -> Iterator[list[Translation]]:
        first = next(items, None)
        if first is None:
            return
        seen: list[Sentence] = []
        sentences = _collect(itertools.chain([first], items), seen)
        if lang == src:
            for s in sentences:
                out.append(Translation(s.id, s.text, s.text))
                yield out[-1:]
            return
        glossary = dict(job.request.glossary)
        translator = job.pipe.translator
        stream = getattr(translator, "translate_stream", None)
        kwargs: dict[str, Any] = {"source_language": src, "target_language": lang, "glossary": glossary}
        parts = stream(sentences, **kwargs) if stream is not None else [translator.translate(list(sentences), **kwargs)]
        for part in parts:
            out.extend(part)
            yield part
        from pipelines.runner import translation_key

        job.cache.put_json("translate", translation_key(job.pipe, seen, src, lang, glossary), dump_translations(out))

    return stage


def _speak_stage(job: _JobRun, lang: str, front: Front) -> Callable[[Iterator[list[Translation]]], Iterator[int]]:
    """Lists of translations in, each spoken as it comes; the clips and the synthesised count go to ``front``."""

    def stage(parts: Iterator[list[Translation]]) -> Iterator[int]:
        clips: list[Clip] = []
        synthesized = 0
        for part in parts:
            made, count = job.speak_counted(part, lang)
            clips += made
            synthesized += count
            yield len(made)
        front.spoken = (clips, synthesized)

    return stage
