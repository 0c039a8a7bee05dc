"""A whole job through ``build_app`` with the GPU profile's wiring (configs/serve.gpu.yaml: the translator over
the Ray Serve LLM deployment's handle), on CPU: the stand-in (``serve_app.llm_standin``, llama.cpp with the
bundled GGUF) in vLLM's place, the CPU models, no GPUs, on the session's Ray cluster."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_video
from tests.serve_app.conftest import free_port, wait_job

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MODEL_ID = "qwen2.5-7b-instruct"  # the GPU profile's llm_config model id
CYRILLIC = re.compile(r"[\u0400-\u04ff]")


SMALL = {
    "ray_actor_options": {"num_cpus": 0.1, "num_gpus": 0},
    "autoscaling_config": {"min_replicas": 1, "max_replicas": 1},
}


def gpu_profile_on_cpu(root: Path) -> dict[str, Any]:
    """Overrides on configs/serve.gpu.yaml's args: its wiring (the translator over the LLM deployment's handle,
    autoscaled deployments), with the CPU models, no GPUs, one replica each, and the stand-in (llama.cpp with the
    bundled GGUF) in vLLM's place under the profile's model id."""
    return {
        "settings": {
            "asr": {"model": "bundled:whisper-base", "device": "cpu", "compute_type": "int8", "cpu_threads": 2},
            "storage": {"root": str(root), "cache_dir": str(root / "cache")},
            "service": {"job_store_url": f"sqlite:///{root / 'jobs.db'}", "max_running_jobs": 1},
        },
        "llm": {
            "standin": {
                "engine": "llama_cpp",
                "translator": {"model": "bundled:qwen2.5-coder-1.5b-instruct", "n_threads": 2},
            },
            "llm_config": {
                "deployment_config": {
                    "autoscaling_config": {"min_replicas": 1, "max_replicas": 1},
                    "ray_actor_options": {"num_cpus": 0.1},
                }
            },
        },
        "deployments": {
            **{k: SMALL for k in ("ingress", "asr", "translator", "tts", "separator", "diarizer")},
            "job_runner": {"ray_actor_options": {"num_cpus": 0.05, "num_gpus": 0}},
        },
    }


def test_gpu_profile_job_end_to_end_on_the_standin(ray_cluster: None, tmp_path: Path, jfk_flac: Path) -> None:
    from ray import serve

    from serve_app.server import start_app

    serve.shutdown()  # a Serve instance left by another module would keep its own HTTP port

    info = start_app(CONFIGS / "serve.gpu.yaml", host="127.0.0.1", port=free_port(8000),
                     app_args=gpu_profile_on_cpu(tmp_path / "var"))  # fmt: skip
    try:
        status = serve.status().applications["videotranslator"].deployments
        assert f"LLM:{MODEL_ID}" in status and "TranslatorDeployment" in status
        video = make_video(tmp_path / "jfk.mp4", jfk_flac, 12.0)
        with httpx.Client(base_url=info.ui_url.rstrip("/"), timeout=120) as http:
            with open(video, "rb") as fh:
                up = http.post("/files/upload", files={"file": ("jfk.mp4", fh, "video/mp4")})
            assert up.status_code == 201, up.text
            r = http.post("/jobs", json={"file_id": up.json()["data"]["file_id"], "target_languages": ["ru"]})
            assert r.status_code == 202, r.text
            job_id = r.json()["data"]["job_id"]
            job = wait_job(http, job_id, timeout_s=400)
            assert job["state"] == "succeeded", job
            report = http.get(job["output_urls"]["jfk.report.json"]).json()
            srt = http.get(job["output_urls"]["jfk.ru.srt"]).text
    finally:
        serve.shutdown()
    assert len(CYRILLIC.findall(srt)) > 20  # a real translation by the GGUF, through the LLM deployment's handle
    assert f"ray_serve_llm:{MODEL_ID}" in json.dumps(report)
