"""GPU checks (marker ``gpu``): deselected by ``make test``; ``make test-gpu`` runs them on a CUDA machine in a few
minutes (see tests/gpu/conftest.py for their inputs and the figures they report)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from configs.settings import Settings, TranslatorSettings
from tests.gpu.conftest import vllm_model

pytestmark = pytest.mark.gpu

SENTENCES = [
    "Good morning, everyone.",
    "Thank you for coming to the meeting today.",
    "We will talk about the new project and its budget.",
    "The first results look very promising.",
    "Please send me your questions by Friday.",
    "And so, my fellow Americans, ask not what your country can do for you.",
    "Ask what you can do for your country.",
    "See you next week.",
]


def test_asr_on_cuda_float16(jfk_flac: Path, figures: list[dict[str, Any]]) -> None:
    from pipelines.asr import WhisperASR

    s = Settings(_env_file=None)
    s.asr.device = "auto"
    s.asr.model = os.environ.get("VT_TEST_GPU_ASR_MODEL", s.asr.model)
    started = time.perf_counter()
    asr = WhisperASR(s.asr, s.storage.models_dir)
    load_s = time.perf_counter() - started
    assert (asr.device, asr.compute_type) == ("cuda", "float16")
    asr(jfk_flac)  # warm-up: CUDA kernels and the VAD load on the first call
    started = time.perf_counter()
    transcript = asr(jfk_flac)
    wall_s = time.perf_counter() - started
    text = " ".join(seg.text for seg in transcript.segments).lower()
    assert "ask not what your country can do for you" in re.sub(r"[^\w\s]", "", text)
    figures.append({"check": "asr_cuda_float16", "model": s.asr.model, "audio_s": round(transcript.duration_s, 1),
                    "load_s": round(load_s, 2), "wall_s": round(wall_s, 3),
                    "x_realtime": round(transcript.duration_s / wall_s, 1)})  # fmt: skip


def test_vllm_translator_on_a_small_instruction_model(figures: list[dict[str, Any]]) -> None:
    model = vllm_model()
    pytest.importorskip("vllm", reason="vLLM is not installed: pip install 'videotranslator[gpu]'")
    from pipelines.backends.vllm import VLLMBackend
    from pipelines.translate import LLMTranslator, is_untranslated, mixed_script_words

    settings = TranslatorSettings(backend="vllm", model=model, n_ctx=4096)
    started = time.perf_counter()
    backend = VLLMBackend(settings, Path(model).parent)
    load_s = time.perf_counter() - started
    translator = LLMTranslator(settings, backend)
    started = time.perf_counter()
    out = translator.translate_texts(SENTENCES, "en", "ru")
    wall_s = time.perf_counter() - started
    assert len(out) == len(SENTENCES)
    bad = [t for s, t in zip(SENTENCES, out, strict=True)
           if is_untranslated(s, t, source_language="en", target_language="ru") or mixed_script_words(t)]  # fmt: skip
    assert len(bad) <= 1, bad  # a small model may miss one line; the translator then keeps the source
    figures.append({"check": "vllm_translator", "model": Path(model).name, "sentences": len(SENTENCES),
                    "load_s": round(load_s, 1), "wall_s": round(wall_s, 2),
                    "sentences_per_s": round(len(SENTENCES) / wall_s, 1), "untranslated": len(bad)})  # fmt: skip


@pytest.mark.ray
def test_gpu_profile_end_to_end(gpu_ray: None, tmp_path: Path, jfk_flac: Path, figures: list[dict[str, Any]]) -> None:
    """configs/serve.gpu.yaml as it is, on ONE GPU: ASR (float16) and the vLLM deployment (Ray Serve LLM) share it
    (fractional GPUs), the translator calls vLLM through its handle; a dub job to Russian through HTTP."""
    model = vllm_model()
    try:
        import ray.serve.llm  # noqa: F401
        import vllm  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"Ray Serve LLM needs ray[llm] with vLLM: {exc}")
    import httpx
    from ray import serve

    from serve_app.server import start_app
    from tests.conftest import make_video
    from tests.serve_app.conftest import free_port, wait_job

    root = tmp_path / "var"
    one = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}}
    args = {
        "settings": {"asr": {"model": os.environ.get("VT_TEST_GPU_ASR_MODEL", "bundled:whisper-base")},
                     "storage": {"root": str(root), "cache_dir": str(root / "cache")},
                     "service": {"job_store_url": f"sqlite:///{root / 'jobs.db'}"}},
        "llm": {"llm_config": {
            "model_loading_config": {"model_id": "small-instruct", "model_source": model},
            "accelerator_type": None,  # whatever GPU this machine has
            "engine_kwargs": {"max_model_len": 4096, "gpu_memory_utilization": 0.45, "enforce_eager": True},
            "placement_group_config": {"bundles": [{"CPU": 1, "GPU": 0.5}]},  # the other half: ASR
            "deployment_config": one}},
        "deployments": {"asr": {**one, "ray_actor_options": {"num_cpus": 1, "num_gpus": 0.25}},
                        **{k: {**one, "ray_actor_options": {"num_cpus": 0.25, "num_gpus": 0}}
                           for k in ("ingress", "translator", "tts", "separator", "diarizer")}},
    }  # fmt: skip
    serve.shutdown()
    started = time.perf_counter()
    info = start_app(Path(__file__).resolve().parents[2] / "configs/serve.gpu.yaml", host="127.0.0.1",
                     port=free_port(8000), app_args=args)  # fmt: skip
    startup_s = time.perf_counter() - started
    try:
        video = make_video(tmp_path / "jfk.mp4", jfk_flac, 12.0)
        with httpx.Client(base_url=info.ui_url.rstrip("/"), timeout=120) as http:
            with open(video, "rb") as fh:
                file_id = http.post("/files/upload", files={"file": ("jfk.mp4", fh, "video/mp4")}).json()["data"][
                    "file_id"
                ]
            started = time.perf_counter()
            r = http.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"]})
            assert r.status_code == 202, r.text
            job = wait_job(http, r.json()["data"]["job_id"], timeout_s=300)
            job_s = time.perf_counter() - started
            assert job["state"] == "succeeded", job
            srt = http.get(job["output_urls"]["jfk.ru.srt"]).text
    finally:
        serve.shutdown()
    assert len(re.findall(r"[\u0400-\u04ff]", srt)) > 20
    figures.append({"check": "gpu_profile_e2e", "model": Path(model).name, "media_s": 12.0,
                    "startup_s": round(startup_s, 1), "job_s": round(job_s, 1),
                    "x_realtime": round(12.0 / job_s, 2)})  # fmt: skip
