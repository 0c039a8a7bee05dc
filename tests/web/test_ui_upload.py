"""Big files from the page (issue 17) in a real chromium: a file over ``upload.resumable_threshold_bytes`` goes
as a resumable upload in chunks (one PUT each, the progress bar moving), a chunk whose connection fails is sent
again from the server's offset, and Cancel deletes the session."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serve_app.jobs.resumable import session_count
from tests.serve_app.test_uploads import make_wav
from tests.web import test_ui
from tests.web.test_ui import Server, _assert_clean, _open, _services

pytestmark = [pytest.mark.browser, pytest.mark.slow]
browser, page = test_ui.browser, test_ui.page  # the page tests' chromium and page fixtures

CHUNK = 256 * 1024
SIZE = 2 * 1024 * 1024 + 4321  # 9 chunks


@pytest.fixture(scope="module")
def chunk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app without a worker (jobs stay queued), with 256 KiB chunks for files over 512 KiB."""
    from serve_app.api.main import get_application

    root = tmp_path_factory.mktemp("web-chunks") / "var"
    services = _services(root, upload={"chunk_max_bytes": CHUNK, "resumable_threshold_bytes": 2 * CHUNK})
    with Server(get_application(services=services)) as server:
        server.services = services  # type: ignore[attr-defined]
        yield server
    services.jobs.store.close()


@pytest.fixture(scope="module")
def big_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "lecture.wav"
    path.write_bytes(make_wav(SIZE, seed=17))
    return path


def _choose(pg: Any, server: Server, path: Path) -> None:
    _open(pg, server.url + "/")
    pg.set_input_files("#file", str(path))
    pg.fill("#target-search", "Russ")
    pg.press("#target-search", "Enter")


def test_a_big_file_goes_in_chunks_and_a_failed_chunk_resumes(page: Any, chunk_server: Server, big_wav: Path) -> None:
    puts: list[str] = []
    page.on("request", lambda r: r.method == "PUT" and puts.append(r.headers.get("content-range", "")))
    failed: list[str] = []

    def drop_third(route: Any) -> None:  # the third chunk's connection fails once; the page must resume
        third = route.request.headers.get("content-range", "").startswith(f"bytes {2 * CHUNK}-")
        if route.request.method == "PUT" and third and not failed:
            failed.append(route.request.headers["content-range"])
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/files/uploads/*", drop_third)
    _choose(page, chunk_server, big_wav)
    page.evaluate("""() => { window.progress = []; new MutationObserver(() => window.progress.push(
        Number(document.getElementById('upload-progress').value))).observe(document.getElementById('upload-progress'),
        {attributes: true}); }""")
    with page.expect_response(lambda r: r.url.endswith("/jobs") and r.request.method == "POST") as job_answer:
        page.click("#submit")
    assert job_answer.value.status == 202, job_answer.value.text()
    page.wait_for_selector("#form-status.ok")
    chunks = -(-SIZE // CHUNK)
    assert failed and len(puts) == chunks + 1, puts  # every chunk once, the dropped one twice
    assert puts.count(failed[0]) == 2
    assert puts[-1] == f"bytes {(chunks - 1) * CHUNK}-{SIZE - 1}/{SIZE}"
    progress = page.evaluate("window.progress")
    assert len(progress) >= chunks and max(progress) == 1, progress
    job = job_answer.value.json()["data"]
    services = chunk_server.services  # type: ignore[attr-defined]
    record = services.jobs.get(job["job_id"])
    stored = Path(record.request.input)
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(big_wav.read_bytes()).digest()
    assert session_count(services.storage) == 0
    _assert_clean(page)


def test_cancel_deletes_the_session(page: Any, chunk_server: Server, big_wav: Path) -> None:
    held: list[Any] = []

    def hold_third(route: Any) -> None:  # the third chunk hangs, so Cancel comes mid-upload
        if route.request.method == "PUT" and route.request.headers["content-range"].startswith(f"bytes {2 * CHUNK}-"):
            held.append(route)
        else:
            route.continue_()

    page.route("**/files/uploads/*", hold_third)
    _choose(page, chunk_server, big_wav)
    services = chunk_server.services  # type: ignore[attr-defined]
    before = session_count(services.storage)
    page.click("#submit")
    deadline = time.monotonic() + 20
    while not held and time.monotonic() < deadline:  # route handlers run while playwright waits
        page.wait_for_timeout(50)
    assert len(held) == 1 and session_count(services.storage) == before + 1
    assert page.evaluate("() => document.getElementById('upload-progress').value") >= 2 * CHUNK / SIZE
    with page.expect_response(lambda r: r.request.method == "DELETE") as cancelled:
        page.click("#upload-cancel")
    assert cancelled.value.status == 200 and cancelled.value.json()["data"]["offset"] == 2 * CHUNK
    assert session_count(services.storage) == before
    page.wait_for_function("() => document.getElementById('upload-panel').hidden")
    assert "cancelled" in page.inner_text("#form-status").lower()
    assert page.locator("#form-status.error").count() == 0
