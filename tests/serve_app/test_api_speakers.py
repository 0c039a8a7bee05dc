"""POST /jobs speaker fields (issue 15): bad counts and unknown per-speaker voices are 4xx before any job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.serve_app.test_api import assert_envelope, upload


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"speakers": 0}, "validation_error"),
        ({"speakers": 500}, "validation_error"),
        ({"min_speakers": 5, "max_speakers": 2}, "invalid_speakers"),
        ({"speaker_voices": {"S2": "rhvoice:nobody"}}, "unknown_language"),
        ({"speaker_voices": {"bob": "espeak:en-us"}}, "invalid_speakers"),
    ],
)
def test_bad_speaker_fields_are_refused_before_any_job(
    client: Any, tiny_video: Path, extra: dict[str, Any], code: str
) -> None:
    file_id = upload(client, tiny_video).json()["data"]["file_id"]
    body = {"file_id": file_id, "target_languages": ["ru"], **extra}
    assert_envelope(client.post("/jobs", json=body), 422, code)
    assert client.get("/jobs").json()["data"]["jobs"] == []


def test_speaker_fields_reach_the_job(client: Any, tiny_video: Path) -> None:
    file_id = upload(client, tiny_video).json()["data"]["file_id"]
    body = {"file_id": file_id, "target_languages": ["ru"], "mode": "subtitles", "speakers": 2, "max_speakers": 3}
    r = client.post("/jobs", json=body)
    assert r.status_code == 202, r.text
