"""Speakers on the page (issue 15 item 4), in Debian's chromium: the timeline coloured by speaker with the
speaker's label (never colour alone) and a legend, and the editor moving a sentence to another speaker and giving a
speaker another voice; the PATCH carries only those two changes and the re-dub (the real runner, real diarizer and
RHVoice; fake ASR on the known turns and a fake translator) speaks only the sentences they touch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipelines.test_diarize import conversation  # noqa: F401
from tests.serve_app.conftest import Server, make_settings
from tests.serve_app.test_segments_speakers import speaker_stages, two_speaker_video  # noqa: F401
from tests.web.test_ui import JOB_TIMEOUT_MS, _assert_clean, _open, _serve_with_worker, browser, page, shot  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def speakers_server(tmp_path_factory: pytest.TempPathFactory, conversation: Any) -> Iterator[Server]:  # noqa: F811
    root = tmp_path_factory.mktemp("web-speakers") / "var"
    stages = speaker_stages(make_settings(root), conversation[1])  # the TTS clip cache under the server's root
    yield from _serve_with_worker(root, stages, translator={"shorten_ratio": 0.0})


def _timeline(pg: Any) -> list[dict[str, Any]]:
    return pg.eval_on_selector_all(  # type: ignore[no-any-return]
        "#timeline .tl-item",
        """bs => bs.map(b => ({id: Number(b.dataset.id), speaker: b.dataset.speaker, text: b.textContent,
            label: b.getAttribute('aria-label'), colour: getComputedStyle(b).borderTopColor,
            band: getComputedStyle(b).borderTopWidth}))""",
    )


def test_speaker_colours_and_a_speaker_and_voice_change(
    page: Any,  # noqa: F811
    speakers_server: Server,
    two_speaker_video: Path,  # noqa: F811
) -> None:
    _open(page, speakers_server.url + "/")
    page.set_input_files("#file", str(two_speaker_video))
    page.select_option("#source-language", "en")
    page.fill("#target-search", "Russ")
    page.press("#target-search", "Enter")
    page.select_option("#background", "duck")  # no separation: the test is about speakers
    page.click("#submit")
    page.wait_for_selector("#form-status.ok, #form-status.error", timeout=60_000)
    assert page.locator("#form-status.ok").count() == 1, page.inner_text("#form-status")
    card = page.locator(".job").first
    card.locator(".badge-succeeded").wait_for(timeout=JOB_TIMEOUT_MS)
    card.get_by_role("button", name="Watch and edit").click()
    page.wait_for_selector("#editor-rows tr")
    page.wait_for_selector("#speaker-voice-S2")

    items = _timeline(page)
    assert {i["speaker"] for i in items} == {"S1", "S2"}
    colours: dict[str, str] = {}
    for item in items:  # the label is shown and said, beside the colour
        assert item["text"] == item["speaker"] and f"speaker {item['speaker']}" in item["label"]
        assert item["band"] != "0px" and colours.setdefault(item["speaker"], item["colour"]) == item["colour"]
    assert colours["S1"] != colours["S2"]
    legend = page.inner_text("#speaker-legend")
    assert page.locator("#speaker-legend").is_visible() and "S1" in legend and "S2" in legend
    assert page.is_visible("#editor-speaker-col") and page.is_visible("#speaker-voices-field")
    shot(page, "08-speakers")

    # Move a sentence of S2 to S1, and give S2 another installed voice.
    moved = next(i["id"] for i in items if i["speaker"] == "S2")
    speaker_select = f"#editor-rows select.speaker-select[data-id='{moved}']"
    assert page.input_value(speaker_select) == "S2"
    page.select_option(speaker_select, "S1")
    current = {s: page.input_value(f"#speaker-voice-{s}") for s in ("S1", "S2")}
    options = page.eval_on_selector_all(
        "#speaker-voice-S2 option", "os => os.filter(o => !o.disabled).map(o => o.value)"
    )
    other = next(v for v in options if v.startswith("rhvoice:") and v not in current.values())
    page.select_option("#speaker-voice-S2", other)
    assert page.inner_text("#editor-save") == "Save and re-dub 2 changed"
    with page.expect_request(lambda r: r.url.endswith("/segments") and r.method == "PATCH") as sent:
        page.click("#editor-save")
    assert sent.value.post_data_json == {
        "target_language": "ru",
        "segments": [{"id": moved, "speaker": "S1"}],
        "speaker_voices": {"S2": other},
    }
    page.wait_for_selector("#editor-status.ok", timeout=JOB_TIMEOUT_MS)
    s2_after = [i["id"] for i in items if i["speaker"] == "S2" and i["id"] != moved]
    assert page.inner_text("#editor-status") == f"Version 2 is ready: {1 + len(s2_after)} sentence(s) re-synthesised."
    assert page.input_value(speaker_select) == "S1" and page.input_value("#speaker-voice-S2") == other
    after = {i["id"]: i["speaker"] for i in _timeline(page)}
    assert after[moved] == "S1" and all(after[i] == "S2" for i in s2_after)
    _assert_clean(page)
