"""The deployment classes constructed directly, without Ray: over fake stages, over the real stages
(slow), and the handle adapters running a whole job through them (with an in-process stand-in handle)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from configs.settings import Settings
from pipelines.errors import InvalidMedia, InvalidVoice, MediaTooLong, UnknownLanguage
from pipelines.runner import Pipeline
from pipelines.schema import Sentence, Translation
from serve_app.deployments import (
    ASRDeployment,
    DiarizerDeployment,
    HandleASR,
    HandleDiarizer,
    HandleSeparator,
    HandleTranslator,
    HandleTTS,
    JobRunner,
    SeparatorDeployment,
    TranslatorDeployment,
    TTSDeployment,
)
from serve_app.jobs import JobState
from tests.pipelines.test_diarize import JFK_TEXT, _transcript, conversation  # noqa: F401 - a fixture
from tests.serve_app.conftest import FakeASR, FakeTranslator, FakeTTS


class _Response:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class LocalHandle:
    """Stands in for a DeploymentHandle: ``handle.method.remote(...)`` calls the instance in-process."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)

        class _Method:
            @staticmethod
            def remote(*args: Any, **kwargs: Any) -> _Response:
                return _Response(method(*args, **kwargs))

        return _Method


def test_asr_deployment_decodes_bytes_and_checks_language(settings: Settings, jfk_flac: Path) -> None:
    fake = FakeASR()
    dep = ASRDeployment(settings, stage=fake)
    transcript = dep.transcribe(jfk_flac.read_bytes(), "EN")
    samples, language = fake.calls[-1]
    assert language == "en" and isinstance(samples, np.ndarray) and abs(len(samples) / 16000 - 11.0) < 0.1
    assert transcript.segments and dep.info()["name"] == "fake-asr" and dep.ready()
    with pytest.raises(InvalidMedia, match=r"^not a readable audio file \(Invalid data found"):  # no temp file name
        dep.transcribe(b"not audio at all" * 10)
    with pytest.raises(UnknownLanguage):
        dep.transcribe(np.zeros(1600, dtype=np.float32), "klingon")


def test_asr_deployment_holds_decoded_audio_to_max_duration(settings: Settings, jfk_flac: Path) -> None:
    dep = ASRDeployment(settings.model_copy(update={"MAX_DURATION": 5.0}), stage=FakeASR())
    with pytest.raises(MediaTooLong, match="the audio lasts 0:00:11"):
        dep.transcribe(jfk_flac.read_bytes())
    assert not dep.stage.calls


def test_translator_and_tts_deployments(settings: Settings) -> None:
    tr = TranslatorDeployment(settings, stage=FakeTranslator())
    assert tr.translate_texts(["a", "b"], "en", "ru") == ["[ru] a", "[ru] b"]
    tts = TTSDeployment(settings, stage=FakeTTS())
    clips, count = tts.synthesize([Translation(0, "a", "hello")], "en")
    assert count == 1 and clips[0].id == 0
    assert tts.resolve_voice("alloy") == tts.resolve_voice("en_US-joe-medium") == "piper:bundled:en_US-joe-medium"
    assert tts.resolve_voice("ru") == "espeak:ru"
    samples, rate = tts.speech("hello", "ru")
    assert rate == 16000 and samples.dtype == np.float32 and samples.size
    for bad, error in (("piper:/etc/passwd", InvalidVoice), ("../x", InvalidVoice), ("zz", UnknownLanguage)):
        with pytest.raises(error):
            tts.resolve_voice(bad)


def test_handle_adapters_run_a_job_through_the_deployments(settings: Settings, jfk_video: Path) -> None:
    asr = ASRDeployment(settings, stage=FakeASR())
    handles = (LocalHandle(asr), LocalHandle(TranslatorDeployment(settings, stage=FakeTranslator())),
               LocalHandle(TTSDeployment(settings, stage=FakeTTS())))  # fmt: skip
    runner = JobRunner(settings, *handles, poll_s=0.05)
    try:
        from pipelines.schema import JobRequest

        record = runner.service.submit(JobRequest(input=str(jfk_video), target_languages=["ru"]))
        deadline = time.monotonic() + 60
        while not (done := runner.service.get(record.id)).terminal:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert done.state is JobState.SUCCEEDED, done.error
        assert "jfk.ru.mp4" in done.outputs
        audio, _ = asr.stage.calls[-1]
        assert isinstance(audio, np.ndarray)  # the wav travelled as samples, so a replica may be elsewhere
    finally:
        runner.shutdown()


def _job(runner: JobRunner, request: Any) -> Any:
    record = runner.service.submit(request)
    deadline = time.monotonic() + 120
    while not (done := runner.service.get(record.id)).terminal:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert done.state is JobState.SUCCEEDED, done.error
    return done


@pytest.mark.slow
def test_separation_and_diarization_run_on_their_deployments_only_when_asked(
    settings: Settings, jfk_video: Path
) -> None:
    """Issue 15: the job runner reaches the real separator and diarizer through their handles: a dub with background
    'separate' and diarization on calls both (the separator once per ~12 s chunk; the stem is cached, so a re-run
    does not call it again); background 'duck' with diarization off calls neither."""
    import json

    from pipelines.schema import JobRequest

    separator, diarizer = SeparatorDeployment(settings), DiarizerDeployment(settings)
    handles = (LocalHandle(ASRDeployment(settings, stage=FakeASR())),
               LocalHandle(TranslatorDeployment(settings, stage=FakeTranslator())),
               LocalHandle(TTSDeployment(settings, stage=FakeTTS())), LocalHandle(separator), LocalHandle(diarizer))  # fmt: skip
    runner = JobRunner(settings, *handles, poll_s=0.05)
    try:
        done = _job(runner, JobRequest(input=str(jfk_video), target_languages=["ru"], background="separate"))
        assert separator.info() == {"name": "spleeter-2stems", "calls": 2} and diarizer.info()["calls"] == 1
        report = json.loads(runner.storage.output_path(done.id, "jfk.report.json").read_text())
        assert report["background"] == "separate" and report["speakers"]["count"] == 1
        assert {"separate", "diarize"} <= set(report["timings_s"])
        again = _job(runner, JobRequest(input=str(jfk_video), target_languages=["de"], background="separate"))
        assert separator.calls == 2 and diarizer.calls == 1  # both from the stage cache
        assert again.state is JobState.SUCCEEDED
    finally:
        runner.shutdown()
    off = settings.model_copy(update={"diarize": settings.diarize.model_copy(update={"enabled": False})})
    separator, diarizer = SeparatorDeployment(off), DiarizerDeployment(off)
    handles = handles[:3] + (LocalHandle(separator), LocalHandle(diarizer))
    runner = JobRunner(off, *handles, poll_s=0.05)
    try:
        _job(runner, JobRequest(input=str(jfk_video), target_languages=["es"], background="duck"))
        assert separator.calls == diarizer.calls == 0 and separator._stage is None  # the model never loaded
    finally:
        runner.shutdown()


class HalfChunk:
    """A separation stage that halves each chunk and records the chunks it got."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []

    def background_chunk(self, x: np.ndarray) -> np.ndarray:
        self.chunks.append(x)
        return x * 0.5


def test_handle_separator_sends_one_chunk_a_call_and_writes_what_the_local_stage_writes(
    settings: Settings, jfk_video: Path, tmp_path: Path
) -> None:
    import soundfile as sf

    from pipelines.separate import CHUNK, SAMPLE_RATE_HZ, write_background

    dep = SeparatorDeployment(settings, stage=HalfChunk())
    remote = HandleSeparator(LocalHandle(dep))(jfk_video, tmp_path / "remote.flac")
    local = write_background(jfk_video, tmp_path / "local.flac", HalfChunk().background_chunk)
    (a, rate_a), (b, rate_b) = sf.read(remote), sf.read(local)
    assert rate_a == rate_b == SAMPLE_RATE_HZ and a.shape == b.shape and np.array_equal(a, b)
    assert abs(a.shape[0] / SAMPLE_RATE_HZ - 13.0) < 0.1
    chunks = dep.stage.chunks
    assert dep.calls == len(chunks) == 2 and all(c.dtype == np.float32 and c.shape[0] == 2 for c in chunks)
    assert max(c.shape[1] for c in chunks) == CHUNK  # a chunk a call, never the whole input


def test_handle_diarizer_finds_what_the_local_stage_finds(settings: Settings, conversation: Any) -> None:  # noqa: F811
    """The wav travels as int16 samples: the stage gets exactly the numbers it reads from the 16-bit file itself, and
    finds the two speakers; no samples travel when the count is forced to one."""
    from pipelines.diarize import Diarizer, load_audio

    wav, turns = conversation
    transcript = _transcript(turns, JFK_TEXT)
    real = Diarizer(settings.diarize)
    sent: list[np.ndarray] = []

    def stage(audio: np.ndarray, transcript: Any, **kwargs: Any) -> Any:
        sent.append(audio)
        return real(audio, transcript, **kwargs)

    dep = DiarizerDeployment(settings, stage=stage)
    got = HandleDiarizer(LocalHandle(dep))(wav, transcript, settings=settings.diarize)
    assert sent[0].dtype == np.int16 and np.array_equal(load_audio(sent[0]), load_audio(wav))
    assert got.method == "eigengap" and len(got.speakers) == 2
    assert len(got.labels) == sum(len(s.words) for s in transcript.segments)
    one = HandleDiarizer(LocalHandle(dep))(wav, transcript, speakers=1, settings=settings.diarize)
    assert sent[1].size == 0 and one.method == "forced" and set(one.labels) == {"S1"}
    assert dep.info() == {"name": "diarizer", "calls": 2}


def test_job_runner_shutdown_requeues_the_running_job(settings: Settings, jfk_video: Path) -> None:
    from pipelines.schema import JobRequest

    class SlowTranslator(FakeTranslator):
        def translate(self, sentences: Any, **kwargs: Any) -> list[Translation]:
            time.sleep(1.0)
            return super().translate(sentences, **kwargs)

    def factory() -> Pipeline:
        return Pipeline(settings, asr=FakeASR(), translator=SlowTranslator(), tts=FakeTTS())

    runner = JobRunner(settings, pipeline_factory=factory, poll_s=0.05)
    record = runner.service.submit(JobRequest(input=str(jfk_video), target_languages=["ru"], mode="subtitles"))
    deadline = time.monotonic() + 30
    while runner.service.get(record.id).stage != "translate":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    runner.shutdown()  # in a replica the process ends here; in this test the worker thread runs on
    after = runner.service.get(record.id)
    assert after.state is JobState.QUEUED and not after.outputs  # its late result is not recorded


def test_adapters_expose_names(settings: Settings) -> None:
    assert HandleASR(LocalHandle(ASRDeployment(settings, stage=FakeASR()))).name == "fake-asr"
    assert (
        HandleTranslator(LocalHandle(TranslatorDeployment(settings, stage=FakeTranslator()))).name == "fake-translator"
    )
    tts = HandleTTS(LocalHandle(TTSDeployment(settings, stage=FakeTTS())))
    clips = tts([Translation(0, "a", "hi"), Translation(1, "b", "there")], "en")
    assert len(clips) == 2 and tts.synthesized_count == 2 and tts.voice_for("de") == "espeak:de"
    sentences = [Sentence(0, 0.0, 1.0, "hello")]
    out = HandleTranslator(LocalHandle(TranslatorDeployment(settings, stage=FakeTranslator()))).translate(
        sentences, source_language="en", target_language="ru"
    )
    assert out[0].text == "[ru] hello"


@pytest.mark.slow
def test_real_stages(settings: Settings, jfk_flac: Path, data_dir: Path) -> None:
    """The bundled models behind the deployment classes: transcription from bytes, Whisper's translate task,
    and speech in the bundled piper voice."""
    asr = ASRDeployment(settings)
    text = " ".join(s.text for s in asr.transcribe(jfk_flac.read_bytes()).segments).lower()
    assert "ask not what your country can do for you" in text
    english = asr.translate_to_english((data_dir / "ru_num.wav").read_bytes(), "ru")
    words = " ".join(s.text for s in english.segments)
    assert english.language == "ru" and words and not any("а" <= c.lower() <= "я" for c in words)
    samples, rate = TTSDeployment(settings).speech("Hello there.", "en")
    assert rate == 22050 and len(samples) / rate > 0.4


@pytest.fixture(scope="module")
def speech_70s(tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path) -> Path:
    """70 s of speech and pauses (the JFK clip with 3 s of silence, looped) as Opus: ~100 KB that decode to
    4.5 MB of float32."""
    from pipelines.media import run_ffmpeg

    out = tmp_path_factory.mktemp("long") / "speech70.opus"
    run_ffmpeg(["-stream_loop", "-1", "-i", str(jfk_flac), "-af", "apad=pad_dur=3", "-t", "70", "-ac", "1",
                "-c:a", "libopus", "-b:a", "12k", str(out)])  # fmt: skip
    return out


def _sent(fake: FakeASR) -> list[int]:
    assert all(isinstance(audio, np.ndarray) for audio, _ in fake.calls)
    return [len(audio) for audio, _ in fake.calls]


def test_handle_asr_sends_a_long_wav_in_chunks(settings: Settings, speech_70s: Path, tmp_path: Path) -> None:
    """The runner's 16 kHz wav travels to the replica in chunks of at most window_s, never whole."""
    from pipelines.media import extract_audio, probe

    wav = extract_audio(probe(speech_70s), tmp_path / "a.wav")
    dep = ASRDeployment(settings, stage=FakeASR())
    transcript = HandleASR(LocalHandle(dep), window_s=30.0)(wav, language="en")
    sizes = _sent(dep.stage)
    assert len(sizes) >= 3 and max(sizes) <= 30 * 16000
    assert transcript.duration_s == pytest.approx(70.0, abs=0.1) and transcript.segments[-1].start_s > 40.0
    short = ASRDeployment(settings, stage=FakeASR())
    HandleASR(LocalHandle(short))(wav, language="en")
    assert _sent(short.stage) == [70 * 16000]  # within the window (600 s by default): whole, as before


def test_v1_audio_is_decoded_to_disk_and_sent_in_chunks(settings: Settings, speech_70s: Path) -> None:
    dep = ASRDeployment(settings, stage=FakeASR())
    dep.window_s = 30.0
    transcript = dep.transcribe(speech_70s.read_bytes(), "en")
    sizes = _sent(dep.stage)
    assert len(sizes) >= 3 and max(sizes) <= 30 * 16000
    assert transcript.language == "en" and transcript.segments[-1].start_s > 40.0


def test_v1_audio_length_is_checked_before_decoding(
    settings: Settings, speech_70s: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import media

    def never(*args: Any, **kwargs: Any) -> Path:
        raise AssertionError("decoded although the container said it was too long")

    import faster_whisper.audio

    monkeypatch.setattr(media, "extract_audio", never)  # no decoder may run: ffmpeg's, nor PyAV's
    monkeypatch.setattr(faster_whisper.audio, "decode_audio", never)
    dep = ASRDeployment(settings.model_copy(update={"MAX_DURATION": 60.0}), stage=FakeASR())
    with pytest.raises(MediaTooLong, match="the audio lasts 0:01:10"):
        dep.transcribe(speech_70s.read_bytes())
    assert not dep.stage.calls
