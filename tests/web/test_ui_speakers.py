"""The page's speakers field (issue 15), in Debian's chromium: "automatic" or a count (1..GET /config's limit), and
"at least / at most" under the advanced part; the chosen values reach the job the upload form creates, and a
contradiction is refused on the page before anything is sent. No worker: the jobs stay queued, their request is
what the test reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve_app.conftest import Server
from tests.web.test_ui import _assert_clean, _open, _services, browser, page, sample_video, shot  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def speakers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from serve_app.api.main import get_application

    services = _services(tmp_path_factory.mktemp("web-speakers") / "var")
    with Server(get_application(services=services)) as server:
        server.services = services  # type: ignore[attr-defined]
        yield server
    services.jobs.store.close()


def _fill(pg: Any, video: Path) -> None:
    pg.set_input_files("#file", str(video))
    pg.fill("#target-search", "Russ")
    pg.press("#target-search", "Enter")


def _submit(pg: Any) -> dict[str, Any]:
    with pg.expect_response(lambda r: r.url.endswith("/jobs/upload") and r.request.method == "POST") as answer:
        pg.click("#submit")
    assert answer.value.status == 202, answer.value.text()
    pg.wait_for_selector("#form-status.ok")
    return answer.value.json()["data"]  # type: ignore[no-any-return]


def test_the_chosen_speaker_count_reaches_the_job(page: Any, speakers_server: Server, sample_video: Path) -> None:  # noqa: F811
    jobs = speakers_server.services.jobs  # type: ignore[attr-defined]
    _open(page, speakers_server.url + "/")
    options = page.eval_on_selector_all("#speakers option", "os => os.map(o => o.value)")
    assert options == ["", *map(str, range(1, 21))] and page.input_value("#speakers") == ""  # automatic by default
    assert page.get_attribute("#max-speakers", "max") == "20"

    _fill(page, sample_video)
    page.select_option("#speakers", "3")
    page.click("#speakers-advanced summary")
    assert page.is_disabled("#min-speakers") and page.is_disabled("#max-speakers")  # a count leaves no bounds
    job = _submit(page)
    request = jobs.get(job["job_id"]).request
    assert (request.speakers, request.min_speakers, request.max_speakers) == (3, None, None)
    assert page.input_value("#speakers") == ""  # the form is reset, and the bounds are usable again
    page.wait_for_function("() => !document.getElementById('min-speakers').disabled")

    _fill(page, sample_video)
    page.fill("#min-speakers", "2")
    page.fill("#max-speakers", "4")
    request = jobs.get(_submit(page)["job_id"]).request
    assert (request.speakers, request.min_speakers, request.max_speakers) == (None, 2, 4)

    _fill(page, sample_video)
    page.fill("#min-speakers", "5")
    page.fill("#max-speakers", "2")
    shot(page, "08-speakers")
    sent: list[str] = []
    page.on("request", lambda r: r.method == "POST" and sent.append(r.url))
    page.click("#submit")
    page.wait_for_selector("#form-status.error")
    assert "(5)" in page.text_content("#form-status") and sent == []  # refused on the page
    assert len(jobs.list()) == 2
    _assert_clean(page)


def test_a_separating_job_names_its_stage_on_the_speech_bar(page: Any, speakers_server: Server) -> None:  # noqa: F811
    """The worker's diarize and separate shares sit inside the speech bar's (serve_app/jobs/worker.py): while one
    runs, the bar is named after it and moves, so a long separation does not look stuck."""
    _open(page, speakers_server.url + "/")
    shown = page.evaluate("""async () => {
      const { JobList } = await import('/static/jobs.js');
      const list = new JobList(document.createElement('ul'), document.createElement('p'),
        { onOpen() {}, onChange() {}, onError() {} });
      const job = { job_id: 'x', state: 'running', stage: 'separate', progress: 0.32, mode: 'dub', eta_s: null,
        target_languages: ['ru'], outputs: [], created_at: '', file_id: null, cancel_requested: false, error: null };
      list.cards.set('x', document.createElement('li'));
      const bar = (j) => { list.render(j); const li = list.cards.get('x').querySelector('[data-stage=asr]');
        return [li.querySelector('.stage-name').textContent, li.className, li.querySelector('progress').value]; };
      return [bar(job), bar({ ...job, stage: 'translate', progress: 0.4 })];
    }""")
    (name, state, value), (after, _, done) = shown
    assert name == "Remove the original voice" and "stage-active" in state and 0.8 < value < 0.9
    assert after == "Recognise speech" and done == 1
