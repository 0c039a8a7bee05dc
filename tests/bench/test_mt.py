"""The MT bench's scoring (bench/mt.py): what it counts in the hypotheses. Fast: no model."""

from __future__ import annotations

from bench.mt import score


def test_score_counts_mixed_words_foreign_runs_and_latin_leftovers() -> None:
    texts = ["В этом房间里 никто не будет совершать эту ошибку.", "Люди argue об этом.", "Всё хорошо."]
    run = {"passages": [{"seconds": 3.0, "texts": texts, "flags": [["foreign_script"], ["latin_words"], []]}]}
    refs = [["В этой комнате никто не совершит эту ошибку.", "Люди спорят об этом.", "Всё хорошо."]]
    res = score("en-ru", run, refs)
    assert res["mixed_script_words"] == ["этом房间里"] and res["foreign_script"] == ["房间里"]
    assert res["latin_leftovers"] == ["argue"] and res["flagged_share"] == 0.667
    assert res["flags"] == ["foreign_script", "latin_words"] and res["s_per_sentence"] == 1.0
