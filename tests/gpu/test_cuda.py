"""GPU checks (marker ``gpu``): deselected by ``make test``; run with ``make test-gpu`` on a CUDA machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from configs.settings import Settings

pytestmark = pytest.mark.gpu


def test_asr_on_cuda_float16(jfk_flac: Path) -> None:
    from pipelines.asr import WhisperASR

    s = Settings(_env_file=None)
    s.asr.device = "auto"
    asr = WhisperASR(s.asr, s.storage.models_dir)
    assert (asr.device, asr.compute_type) == ("cuda", "float16")
    text = " ".join(seg.text for seg in asr(jfk_flac).segments).lower()
    assert "ask not what your country can do for you" in re.sub(r"[^\w\s]", "", text)
