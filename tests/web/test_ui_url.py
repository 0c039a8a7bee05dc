"""The page's link field (issue 18) in a real chromium: a link instead of a file is POST /jobs {url}; a link the
server will not fetch is refused with its message, and a link to the allow-listed local media server queues."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web import test_ui
from tests.web.test_ui import Server, _assert_clean, _open, _services

pytestmark = [pytest.mark.browser, pytest.mark.slow]
browser, page = test_ui.browser, test_ui.page  # the page tests' chromium and page fixtures


@pytest.fixture(scope="module")
def url_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app without a worker (jobs stay queued), allow-listing 127.0.0.1 for the media server."""
    from serve_app.api.main import get_application

    services = _services(tmp_path_factory.mktemp("web-url") / "var", fetch={"allow_hosts": ["127.0.0.1"]})
    with Server(get_application(services=services)) as server:
        server.services = services  # type: ignore[attr-defined]
        yield server
    services.jobs.store.close()


def test_a_link_instead_of_a_file(page: Any, url_server: Server, media_server: Any, tmp_path: Path) -> None:
    _open(page, url_server.url + "/")
    page.fill("#target-search", "span")
    page.press("#target-search", "Enter")
    page.fill("#url", "ftp://example.com/talk.mp4")
    page.click("#submit")
    assert "must start with http:// or https://" in page.inner_text("#form-status")  # checked before sending

    page.fill("#url", "http://169.254.169.254/latest/meta-data")
    with page.expect_response(lambda r: r.url.endswith("/jobs")) as response:
        page.click("#submit")
    assert response.value.status == 400 and response.value.json()["error"]["code"] == "url_refused"
    page.wait_for_selector("#form-status.error")
    assert "will not download from that address" in page.inner_text("#form-status")

    page.fill("#url", media_server.url("/talk.mp4"))
    with page.expect_response(lambda r: r.url.endswith("/jobs")) as response:
        page.click("#submit")
    assert response.value.status == 202, response.value.text()
    job = response.value.json()["data"]
    page.wait_for_selector(f"#job-{job['job_id']}")
    assert "downloading the video" in page.inner_text("#form-status") and page.input_value("#url") == ""
    record = url_server.services.jobs.get(job["job_id"])  # type: ignore[attr-defined]
    assert record.request.input == media_server.url("/talk.mp4") and record.request.target_languages == ["es"]
    _assert_clean(page)
