from __future__ import annotations

from pathlib import Path

import pytest

from configs.settings import Settings


def test_defaults_keep_the_spec_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VT_LOG_DIR", "LOG_DIR", "VT_STORAGE__CACHE_DIR", "MAX_FILE_SIZE", "VT_MAX_FILE_SIZE"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)
    assert s.PROJECT_NAME == "VideoTranslator"
    assert s.MAX_FILE_SIZE == 2 * 1024**3
    assert s.LOG_DIR == Path("var/log")
    assert s.asr.model == "bundled:whisper-base"
    assert s.fit.max_speed == 1.35


def test_env_prefix_nesting_and_spec_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_ASR__MODEL", "large-v3")
    monkeypatch.setenv("VT_FIT__MAX_SPEED", "1.2")
    monkeypatch.setenv("MAX_FILE_SIZE", "1024")
    monkeypatch.setenv("VT_LOG_LEVEL", "DEBUG")
    s = Settings(_env_file=None)
    assert s.asr.model == "large-v3"
    assert s.fit.max_speed == 1.2
    assert s.MAX_FILE_SIZE == 1024
    assert s.LOG_LEVEL == "DEBUG"


def test_max_duration_default_and_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VT_MAX_DURATION", "MAX_DURATION"):
        monkeypatch.delenv(name, raising=False)
    assert Settings(_env_file=None).MAX_DURATION == 4 * 3600  # seconds
    monkeypatch.setenv("MAX_DURATION", "600")
    assert Settings(_env_file=None).MAX_DURATION == 600
    monkeypatch.setenv("VT_MAX_DURATION", "90.5")  # the prefixed name wins
    assert Settings(_env_file=None).MAX_DURATION == 90.5
    monkeypatch.setenv("VT_MAX_DURATION", "0")
    with pytest.raises(ValueError, match="MAX_DURATION"):
        Settings(_env_file=None)


def test_dotenv_and_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("VT_TRANSLATOR__BATCH_SIZE=3\nPROJECT_NAME=Demo\n")
    yaml_file = tmp_path / "settings.yaml"
    yaml_file.write_text("translator:\n  batch_size: 5\n  backend: openai\ntts:\n  voices:\n    ru: espeak:ru\n")
    monkeypatch.setenv("VT_CONFIG_FILE", str(yaml_file))
    s = Settings(_env_file=env)
    assert s.translator.batch_size == 3  # .env beats YAML
    assert s.translator.backend == "openai"  # YAML beats defaults
    assert s.tts.voices == {"ru": "espeak:ru"}
    assert s.PROJECT_NAME == "Demo"


def test_invalid_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_TRANSLATOR__BACKEND", "nonsense")
    with pytest.raises(ValueError):
        Settings(_env_file=None)


def test_debug_turns_on_debug_logs_unless_log_level_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VT_LOG_LEVEL", "LOG_LEVEL", "VT_DEBUG", "DEBUG"):
        monkeypatch.delenv(name, raising=False)
    assert Settings(_env_file=None).LOG_LEVEL == "INFO"
    monkeypatch.setenv("DEBUG", "true")
    assert Settings(_env_file=None).LOG_LEVEL == "DEBUG"
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    assert Settings(_env_file=None).LOG_LEVEL == "WARNING"  # an explicit level wins
