"""The re-dub preset: an edited line loses the translator's failure flags (issue 16 adds latin_words, length_ratio)."""

from __future__ import annotations

from serve_app.jobs.redub import _preset


def test_an_edit_clears_the_soft_check_flags_and_keeps_others() -> None:
    rows = [
        {"id": 0, "source": "Good morning, everyone.", "translation": "Доброе утро, everyone.",
         "flags": ["latin_words", "overflow"]},
        {"id": 1, "source": "A long line.", "translation": "Длинная.", "flags": ["length_ratio"]},
        {"id": 2, "source": "Nobody in this room.", "translation": "В этом никто.", "flags": ["foreign_script"]},
    ]
    translations, changed = _preset(rows, {0: "Доброе утро всем.", 2: "В этой комнате никто."})
    assert changed == [0, 2] and translations[2].flags == ("edited",)
    assert translations[0].text == "Доброе утро всем." and translations[0].flags == ("edited",)
    assert translations[1].flags == ("length_ratio",)  # not edited: still flagged
