"""The web page in a real browser: Debian's chromium driven by Playwright (never ``playwright install``).

The app under test is ``get_application(...)`` served by uvicorn in a background thread on a free loopback
port, WITH a real ``JobWorker`` running the real ``Pipeline`` (bundled Whisper, Qwen and voices). That is the
whole stack minus Ray; the Ray Serve HTTP path is tested in ``tests/serve_app/test_serve_http.py``.
A second app instance with a tiny MAX_FILE_SIZE serves the error paths. Screenshots of the main states go
to ``var/screenshots/`` (not committed). The result panel is shot for the docs as well: into the tracked
``docs/screenshots/ui.png`` only with ``UPDATE_SCREENSHOTS=1``, else into the test's temp folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.serve_app.conftest import Server, make_settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "screenshots"
DOC_SHOT = ROOT / "docs" / "screenshots" / "ui.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
EDITED = "Это отредактированная строка."
JOB_TIMEOUT_MS = 240_000


def _services(root: Path, **overrides: Any) -> Any:
    from serve_app.api.services import Services

    return Services.local(make_settings(root, **overrides))


def _serve_with_worker(root: Path, stages: Mapping[str, Any], **overrides: Any) -> Iterator[Server]:
    """The app over ``root`` and a JobWorker running the real Pipeline (with ``stages`` replacing its own)."""
    from pipelines.runner import Pipeline
    from serve_app.api.main import get_application
    from serve_app.jobs import JobWorker

    services = _services(root, **overrides)
    worker = JobWorker(services.jobs, lambda: Pipeline(services.settings, **stages), poll_s=0.2)
    worker.start()
    try:
        with Server(get_application(services=services)) as server:
            yield server
    finally:
        worker.stop(timeout=60)
        services.jobs.store.close()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve_with_worker(tmp_path_factory.mktemp("web") / "var", {})


API_KEY = "sk-ui-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app with API keys on and a worker whose stages are the fast fakes (the HTTP, the page, the guard and
    the pipeline's own stages around them are real)."""
    from tests.serve_app.conftest import FakeASR, FakeTranslator, FakeTTS

    fakes = {"asr": FakeASR(), "translator": FakeTranslator(), "tts": FakeTTS()}
    root = tmp_path_factory.mktemp("web-keyed") / "var"
    yield from _serve_with_worker(root, fakes, service={"api_keys": [API_KEY]})


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from serve_app.api.main import get_application

    services = _services(tmp_path_factory.mktemp("web-small") / "var", MAX_FILE_SIZE=20_000)
    with Server(get_application(services=services)) as server:
        yield server
    services.jobs.store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail("chromium is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="en-US", viewport={"width": 1100, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.hosts = set()  # type: ignore[attr-defined]
    pg.console_errors = []  # type: ignore[attr-defined]
    pg.on("request", lambda r: pg.hosts.add(urlsplit(r.url).hostname or urlsplit(r.url).scheme))  # type: ignore[attr-defined]
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))  # type: ignore[attr-defined]
    yield pg
    context.close()


@pytest.fixture(scope="module")
def sample_video(tmp_path_factory: pytest.TempPathFactory, test_mp3: Path) -> Path:
    from tests.conftest import make_video

    return make_video(tmp_path_factory.mktemp("media") / "talk.mp4", test_mp3, 5.0)


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _open(page: Any, url: str) -> float:
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=10_000)
    return time.perf_counter() - started


def _assert_clean(page: Any) -> None:
    assert page.hosts <= {"127.0.0.1", "data", "blob"}, f"requests left loopback: {page.hosts}"
    csp = [e for e in page.console_errors if "Content Security Policy" in e]
    assert not csp, csp


def test_translate_watch_edit_and_redub(page: Any, app_server: Server, sample_video: Path, tmp_path: Path) -> None:
    elapsed = _open(page, app_server.url + "/")
    ready_ms = page.evaluate("Number(document.body.dataset.readyMs)")
    assert ready_ms < 1000 and elapsed < 2.0, (ready_ms, elapsed)  # in-page: navigation start → ready
    shot(page, "01-empty")

    page.set_input_files("#file", str(sample_video))
    assert "talk.mp4" in page.inner_text("#file-info")
    page.select_option("#source-language", "en")  # 4.5 s of speech is too little for a sure language guess
    page.fill("#target-search", "Russ")
    page.press("#target-search", "Enter")
    assert page.is_checked("#target-ru") and "Russian" in page.inner_text("#target-chips")
    page.click("#submit")
    page.wait_for_selector("#form-status.ok, #form-status.error", timeout=60_000)
    assert page.locator("#form-status.ok").count() == 1, page.inner_text("#form-status")
    card = page.locator(".job").first
    card.locator(".badge-running, .badge-succeeded").first.wait_for(timeout=60_000)
    shot(page, "02-running")
    card.locator(".badge-succeeded").wait_for(timeout=JOB_TIMEOUT_MS)
    assert card.locator(".stage-done").count() == 5

    card.get_by_role("button", name="Watch and edit").click()
    page.wait_for_selector("#editor-rows tr")
    page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=20_000)
    player = page.evaluate("""() => { const v = document.getElementById('player');
        return {src: v.currentSrc, tracks: v.querySelectorAll('track').length, textTracks: v.textTracks.length,
                langs: [...v.textTracks].map(t => t.language), duration: v.duration}; }""")
    assert player["src"].endswith(".ru.mp4?v=" + player["src"].split("?v=")[1]) and player["duration"] > 4
    assert player["tracks"] == 2 and player["textTracks"] == 2 and player["langs"] == ["ru", "en"]

    page.check("#audio-original")
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_function("() => document.getElementById('original-audio').currentTime > 0.3", timeout=15_000)
    state = page.evaluate("""() => { const v = document.getElementById('player'), a = document.getElementById('original-audio');
        return {muted: v.muted, audioPaused: a.paused, audioSrc: a.currentSrc, drift: Math.abs(a.currentTime - v.currentTime)}; }""")
    assert state["muted"] and not state["audioPaused"] and state["audioSrc"].endswith("/original-audio"), state
    assert state["drift"] < 0.5, state
    page.check("#audio-dubbed")
    assert page.evaluate("!document.getElementById('player').muted && document.getElementById('original-audio').paused")
    page.evaluate("document.getElementById('player').pause()")
    shot(page, "03-result")
    assert shot_viewport(page, doc_shot_path(tmp_path)).stat().st_size > 0

    first = page.locator("#editor-rows textarea").first
    first.fill(EDITED)
    assert page.inner_text("#editor-save") == "Save and re-dub 1 changed"
    page.click("#editor-save")
    page.wait_for_selector("#editor-status.ok", timeout=JOB_TIMEOUT_MS)
    assert page.inner_text("#editor-status") == "Version 2 is ready: 1 sentence(s) re-synthesised."
    assert page.inner_text("#result-version") == "Version 2"
    assert page.input_value("#editor-rows textarea >> nth=0") == EDITED
    page.wait_for_selector("#versions-block:not([hidden])")
    shot(page, "04-edited")

    with page.expect_download() as download:
        page.get_by_role("link", name="Subtitles Russian (SRT)").click()
    srt = Path(download.value.path()).read_text(encoding="utf-8")
    assert download.value.suggested_filename == "talk.ru.srt" and EDITED.rstrip(".") in srt
    _assert_clean(page)


def doc_shot_path(tmp_path: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Where the docs' screenshot goes: the tracked ``docs/screenshots/ui.png`` only when asked for with
    ``UPDATE_SCREENSHOTS=1`` (so a test run leaves the checkout clean), else a temp file."""
    return DOC_SHOT if environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "ui.png"


def shot_viewport(page: Any, path: Path) -> Path:
    """The result panel as one small PNG (for the docs) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.locator("#result").screenshot(path=str(path))
    return path


def test_the_docs_screenshot_is_written_only_when_asked_for(tmp_path: Path) -> None:
    assert doc_shot_path(tmp_path, {}) == tmp_path / "ui.png"
    assert doc_shot_path(tmp_path, {"UPDATE_SCREENSHOTS": "0"}) == tmp_path / "ui.png"
    assert doc_shot_path(tmp_path, {"UPDATE_SCREENSHOTS": "1"}) == DOC_SHOT


def test_oversize_and_non_media_files_are_refused(
    page: Any, small_server: Server, sample_video: Path, tmp_path: Path
) -> None:
    posts: list[str] = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    _open(page, small_server.url + "/")
    assert sample_video.stat().st_size > 20_000
    page.set_input_files("#file", str(sample_video))
    status = page.inner_text("#form-status")
    assert "more than the limit of 19.5 KB" in status and page.locator("#form-status.error").count() == 1
    assert "No file chosen" in page.inner_text("#file-info")
    page.click("#submit")  # nothing to send
    assert "Choose a video or audio file first" in page.inner_text("#form-status") and not posts

    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my notes, not a video\n" * 20)
    page.set_input_files("#file", str(fake))
    page.fill("#target-search", "span")
    page.press("#target-search", "Enter")
    with page.expect_response(lambda r: r.url.endswith("/jobs/upload")) as response:
        page.click("#submit")
    body = response.value.json()
    assert response.value.status == 415 and body["error"]["code"] == "invalid_media"
    page.wait_for_selector("#form-status.error")
    status = page.inner_text("#form-status")
    assert "could not read this file" in status and body["message"] in status
    shot(page, "05-errors")

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: no sideways scrolling, Russian strings
    _open(page, small_server.url + "/?lang=ru")
    assert page.inner_text("#new-heading") == "1. Перевести видео"
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "06-phone-ru")
    _assert_clean(page)


def test_with_api_keys_the_page_asks_for_one_and_sends_it_on_every_call(
    page: Any, keyed_server: Server, sample_video: Path
) -> None:
    """Issue 12, item 13: upload, live progress, the result's video, subtitles and a download, all with the key
    (kept in sessionStorage) in an Authorization header; the job events come through fetch, not EventSource."""
    api: list[tuple[str, str | None]] = []  # every API call: (path, its Authorization header)

    def record(request: Any) -> None:
        path = request.url.removeprefix(keyed_server.url)
        if path.startswith(("/jobs", "/files", "/config")):
            api.append((path, request.headers.get("authorization")))

    page.on("request", record)
    _open(page, keyed_server.url + "/")
    page.wait_for_selector("#key-form:not([hidden])")  # the server said 401: the page asks for the key
    assert "needs an API key" in page.inner_text("#global-error-text")
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.fill("#api-key", API_KEY)
    assert api and all(auth is None for _, auth in api)
    api.clear()
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#key-forget:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('vt.apiKey')") == API_KEY
    assert page.evaluate("localStorage.getItem('vt.apiKey')") is None  # never kept beyond the tab
    assert page.locator("#global-error").is_hidden()  # the reloaded page's calls all passed

    page.set_input_files("#file", str(sample_video))
    page.select_option("#source-language", "en")
    page.fill("#target-search", "Russ")
    page.press("#target-search", "Enter")
    page.click("#submit")
    page.wait_for_selector("#form-status.ok, #form-status.error", timeout=60_000)
    assert page.locator("#form-status.ok").count() == 1, page.inner_text("#form-status")
    card = page.locator(".job").first
    card.locator(".badge-succeeded").wait_for(timeout=60_000)
    assert card.locator(".stage-done").count() == 5 and card.locator(".job-note").inner_text() == ""
    job_id = card.get_attribute("data-job-id")
    assert any(url == f"/jobs/{job_id}/events" for url, _ in api), api  # followed live, with fetch

    card.get_by_role("button", name="Watch and edit").click()
    page.wait_for_selector("#editor-rows tr")
    page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=20_000)
    player = page.evaluate("""() => { const v = document.getElementById('player');
        return {src: v.currentSrc, duration: v.duration, cues: [...v.textTracks].map(t => t.language)}; }""")
    assert player["src"].startswith("blob:") and player["duration"] > 4, player  # fetched with the key
    assert player["cues"] == ["ru", "en"]
    assert "[ru]" in page.input_value("#editor-rows textarea >> nth=0")
    with page.expect_download() as download:
        page.get_by_role("link", name="Subtitles Russian (SRT)").click()
    assert download.value.suggested_filename == "talk.ru.srt"
    assert "[ru]" in Path(download.value.path()).read_text(encoding="utf-8")

    assert api and all(auth == f"Bearer {API_KEY}" for _, auth in api), [u for u, a in api if not a]
    # the stream parser itself: events split anywhere, even between "\r" and "\n"; comments (pings) skipped
    events = page.evaluate("""async () => {
        const { eventStream } = await import('/static/api.js');
        const chunks = ['event: job\\r', '\\ndata: {"a":', '1}\\r\\n\\r\\n: ping\\r\\n\\r\\n',
                        'event: job\\r\\ndata: 2\\r\\n\\r\\n'];
        const realFetch = window.fetch;
        window.fetch = async () => new Response(new ReadableStream({ start(c) {
            for (const x of chunks) c.enqueue(new TextEncoder().encode(x)); c.close(); } }));
        const got = [];
        try { await eventStream('/x', (name, data) => got.push([name, data])).done; } finally { window.fetch = realFetch; }
        return got; }""")
    assert events == [["job", '{"a":1}'], ["job", "2"]]
    assert not page.locator("#global-error:not([hidden])").count(), page.inner_text("#global-error-text")
    _assert_clean(page)
