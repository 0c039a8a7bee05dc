"""The voice choice on the page (issue 14 item 5), in Debian's chromium: a select per target language filled from
GET /v1/voices (the default preselected, not installed voices disabled), a Preview that speaks through
/v1/audio/speech (the real TTS) and plays it, and the chosen voices sent with the job, which the worker (fast fake
ASR/LLM/TTS stages in the real pipeline) then names in its report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from configs.settings import StorageSettings
from pipelines import voices
from tests.serve_app.conftest import Server
from tests.web.test_ui import _assert_clean, _open, _serve_with_worker, browser, page, sample_video, shot  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]
MODELS_DIR = StorageSettings().models_dir


@pytest.fixture(scope="module")
def voices_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.serve_app.conftest import FakeASR, FakeTranslator, FakeTTS

    voices.pull(MODELS_DIR, "ru")
    fakes = {"asr": FakeASR(), "translator": FakeTranslator(), "tts": FakeTTS()}
    yield from _serve_with_worker(tmp_path_factory.mktemp("web-voices") / "var", fakes)


def _pick(pg: Any, query: str) -> None:
    pg.fill("#target-search", query)
    pg.press("#target-search", "Enter")


def test_voice_choice_preview_and_submission(page: Any, voices_server: Server, sample_video: Path) -> None:  # noqa: F811
    _open(page, voices_server.url + "/")
    assert page.locator("#voices-field").is_hidden()  # no target yet: no voices to choose
    _pick(page, "Russ")
    page.wait_for_selector("#voice-ru")
    assert page.locator("#voices-field").is_visible()
    options = page.eval_on_selector_all(
        "#voice-ru option", "os => os.map(o => ({id: o.value, text: o.textContent, disabled: o.disabled}))"
    )
    ids = [o["id"] for o in options]
    assert {"rhvoice:irina", "rhvoice:anna", "rhvoice:aleksandr", "rhvoice:elena", "espeak:ru"} <= set(ids), ids
    default = voices.default_voice("ru", MODELS_DIR)
    assert page.input_value("#voice-ru") == default  # the language's default, preselected
    assert "default" in next(o["text"] for o in options if o["id"] == default)
    assert all(not o["disabled"] for o in options if o["id"].startswith("rhvoice:"))  # installed
    assert "LGPL-2.1+" in next(o["text"] for o in options if o["id"] == "rhvoice:irina")

    # Preview: POST /v1/audio/speech with the chosen voice and the language; the audio element plays it.
    page.select_option("#voice-ru", "rhvoice:irina")
    with page.expect_response(lambda r: r.url.endswith("/v1/audio/speech")) as answer:
        page.click("#voice-preview-ru")
    response = answer.value
    sent = response.request.post_data_json
    assert sent["voice"] == "rhvoice:irina" and sent["language"] == "ru" and sent["input"]
    assert response.status == 200 and response.headers["content-type"] == "audio/wav"
    assert int(response.headers["content-length"]) > 48_000  # a second of 24 kHz 16-bit speech and more
    page.wait_for_function("() => document.getElementById('voice-preview-audio').src.startsWith('blob:')")
    assert page.evaluate("document.getElementById('voice-preview-audio').dataset.voice") == "rhvoice:irina"
    page.wait_for_function("() => document.getElementById('voice-preview-audio').duration > 1", timeout=10_000)

    page.check("input[name=mode][value=subtitles]")  # subtitles only: nothing to speak, no voice to choose
    assert page.is_disabled("#voice-ru") and page.is_disabled("#voice-preview-ru")
    page.check("input[name=mode][value=dub]")
    assert page.is_enabled("#voice-ru")

    _pick(page, "Span")  # a second language gets its own choice; the first keeps its pick
    page.wait_for_selector("#voice-es")
    default_es = page.evaluate("fetch('/v1/voices?language=es').then(r => r.json())")["defaults"]["es"]
    assert page.input_value("#voice-es") == default_es and page.input_value("#voice-ru") == "rhvoice:irina"
    shot(page, "07-voices")

    page.set_input_files("#file", str(sample_video))
    page.select_option("#source-language", "en")
    # The multipart body (a file in it) is not exposed by the browser's request events: read the form as sent.
    page.evaluate("""() => { const send = XMLHttpRequest.prototype.send;
        XMLHttpRequest.prototype.send = function (body) {
            if (body instanceof FormData) window.sentVoices = body.get('voices');
            return send.call(this, body); }; }""")
    with page.expect_request(lambda r: r.url.endswith("/jobs/upload")):
        page.click("#submit")
    assert json.loads(page.evaluate("window.sentVoices")) == {"ru": "rhvoice:irina", "es": default_es}
    page.wait_for_selector("#form-status.ok, #form-status.error", timeout=60_000)
    assert page.locator("#form-status.ok").count() == 1, page.inner_text("#form-status")
    card = page.locator(".job").first
    card.locator(".badge-succeeded").wait_for(timeout=120_000)
    job_id = card.get_attribute("data-job-id")
    job = page.evaluate(f"fetch('/jobs/{job_id}').then(r => r.json())")["data"]
    assert job["voices"] == {"ru": "rhvoice:irina", "es": default_es}
    report_name = next(n for n in job["outputs"] if n.endswith(".report.json"))
    report = page.evaluate(f"fetch('/jobs/{job_id}/outputs/{report_name}').then(r => r.json())")
    assert report["targets"]["ru"]["voice"] == "rhvoice:irina" and report["targets"]["es"]["voice"] == default_es
    assert {r["voice"] for r in report["targets"]["ru"]["sentences"]} == {"rhvoice:irina"}
    _assert_clean(page)


def test_a_link_job_sends_voices_and_a_refused_voice_is_shown(
    page: Any,  # noqa: F811
    voices_server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.pipelines.test_jobvoices import opt_in_voice

    opt_in = opt_in_voice(monkeypatch)  # the server runs in this process: its catalog gains the voice
    _open(page, voices_server.url + "/")
    _pick(page, "Russ")
    page.wait_for_selector("#voice-ru")
    marked = page.eval_on_selector(f"#voice-ru option[value='{opt_in}']", "o => [o.disabled, o.textContent]")
    assert marked[0] is True and "opt-in" in marked[1] and "not installed" in marked[1], marked
    # A voice the server refuses (as if it went away after the page loaded): the 422's message is shown.
    page.evaluate("""() => { const o = document.createElement('option'); o.value = 'rhvoice:nobody';
        o.textContent = 'gone'; document.getElementById('voice-ru').append(o); }""")
    page.select_option("#voice-ru", "rhvoice:nobody")
    page.fill("#url", "http://93.184.216.34/video.mp4")  # public: refused for its voice, never fetched
    with page.expect_response(lambda r: r.url.endswith("/jobs") and r.request.method == "POST") as answer:
        page.click("#submit")
    assert answer.value.request.post_data_json["voices"] == {"ru": "rhvoice:nobody"}
    assert answer.value.status == 422 and answer.value.json()["error"]["code"] == "invalid_voice"
    page.wait_for_selector("#form-status.error")
    assert "unknown voice 'rhvoice:nobody'" in page.inner_text("#form-status")
