"""POST /jobs and mix.background (issue 15): a job may choose what plays under its dub, and a dub over the separated
background is refused (a 4xx envelope, nothing recorded) when the separation model is not pulled. The real job
store, storage and job service; fake model stages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serve_app.api.services import Services
from tests.serve_app.conftest import make_services, make_settings
from tests.serve_app.test_api import assert_envelope, upload


@pytest.fixture
def bare(tmp_path: Path, fakes: dict[str, Any]) -> Iterator[Any]:
    """A client whose models folder is empty (nothing pulled) and whose mix.background is 'separate'."""
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    settings = make_settings(
        tmp_path / "var", storage={"models_dir": str(tmp_path / "no-models")}, mix={"background": "separate"}
    )
    services = make_services(settings, fakes)
    with TestClient(
        get_application(services=services), base_url="http://localhost", raise_server_exceptions=False
    ) as client:
        client.services = services  # type: ignore[attr-defined]
        yield client
    services.jobs.store.close()


def test_separation_without_its_model_is_refused_before_the_job_is_recorded(bare: Any, tiny_video: Path) -> None:
    services: Services = bare.services
    file_id = upload(bare, tiny_video).json()["data"]["file_id"]
    for body in ({}, {"background": "separate"}):  # the setting, or the job's own choice
        r = bare.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"], **body})
        assert "models pull spleeter-2stems" in assert_envelope(r, 422, "separation_unavailable")["message"]
    form = upload(bare, tiny_video, "/jobs/upload", target_languages="ru", background="separate")
    assert_envelope(form, 422, "separation_unavailable")
    assert services.jobs.list() == []
    # what needs no separation is taken: another background, or subtitles only
    for body in ({"background": "duck"}, {"background": "none"}, {"mode": "subtitles"}):
        r = bare.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"], **body})
        assert r.status_code == 202, r.text
    recorded = sorted(str(job.request.background) for job in services.jobs.list())
    assert recorded == ["None", "duck", "none"]


def test_an_unknown_background_is_a_422(client: Any, tiny_video: Path) -> None:
    file_id = upload(client, tiny_video).json()["data"]["file_id"]
    r = client.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"], "background": "loud"})
    assert_envelope(r, 422)
