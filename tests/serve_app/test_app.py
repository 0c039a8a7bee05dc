"""build_app from the profile YAMLs, without serve.run: the deployment graph and each deployment's options.
(A deployment asking for a GPU on a machine without one would make serve.run wait forever.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from serve_app.app import build_app, build_application, deployment_options, replica_settings
from serve_app.server import load_profile

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def deployments(app: Any) -> dict[str, Any]:
    """name → Deployment, walking the bound graph from the ingress."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        bound = getattr(node, "_bound_deployment", None)
        if bound is None or bound.name in found:
            return
        found[bound.name] = bound
        for arg in list(bound.init_args) + list(bound.init_kwargs.values()):
            walk(arg)

    walk(app)
    return found


def profile_args(name: str) -> dict[str, Any]:
    return dict(load_profile(CONFIGS / name)["applications"][0]["args"])


def test_profiles_are_valid_serve_configs() -> None:
    from ray.serve.schema import ServeDeploySchema

    for name in ("serve.cpu.yaml", "serve.gpu.yaml"):
        config = ServeDeploySchema.model_validate(yaml.safe_load((CONFIGS / name).read_text()))
        app = config.applications[0]
        assert app.import_path == "serve_app.app:build_app" and app.route_prefix == "/"
    cpu = yaml.safe_load((CONFIGS / "serve.cpu.yaml").read_text())
    assert cpu["http_options"] == {"host": "127.0.0.1", "port": 8000}


def test_build_app_takes_exactly_one_parameter() -> None:
    """`serve run` refuses a builder with any other parameter, even a keyword-only one."""
    import inspect

    assert len(inspect.signature(build_app).parameters) == 1


def test_cpu_profile_builds_and_fits_two_cores() -> None:
    graph = deployments(build_app(profile_args("serve.cpu.yaml")))
    assert set(graph) == {"Ingress", "ASRDeployment", "TranslatorDeployment", "TTSDeployment", "SeparatorDeployment",
                          "DiarizerDeployment", "JobRunner"}  # fmt: skip
    runner = graph["JobRunner"]  # the separator and diarizer are the job runner's: it reaches them by handle
    assert [deployments(a) for a in runner.init_args[4:]] == [{"SeparatorDeployment": graph["SeparatorDeployment"]},
                                                               {"DiarizerDeployment": graph["DiarizerDeployment"]}]  # fmt: skip
    at_min = 0.0
    at_max = 0.0
    for dep in graph.values():
        cfg = dep._deployment_config
        assert cfg.max_ongoing_requests >= 1
        cpus = dep.ray_actor_options["num_cpus"]
        assert 0 < cpus < 1 and not dep.ray_actor_options.get("num_gpus")
        at_max += cpus * (cfg.autoscaling_config.max_replicas if cfg.autoscaling_config else cfg.num_replicas)
        at_min += cpus * (cfg.autoscaling_config.min_replicas if cfg.autoscaling_config else cfg.num_replicas)
    assert (round(at_min, 3), round(at_max, 3)) == (1.4, 1.95)  # the sums in the profile's header comment
    for name in ("SeparatorDeployment", "DiarizerDeployment"):
        assert graph[name]._deployment_config.autoscaling_config.min_replicas == 1
    asr = graph["ASRDeployment"]._deployment_config.autoscaling_config
    assert (asr.min_replicas, asr.max_replicas, asr.target_ongoing_requests) == (1, 2, 1)
    assert graph["JobRunner"]._deployment_config.num_replicas == 1


def test_gpu_profile_options_and_llm_deployment() -> None:
    """The GPU profile on a CPU machine: the Ray Serve LLM builder is replaced by a fake (vLLM is absent),
    everything else is the real build_app."""
    from ray import serve

    built: dict[str, Any] = {}

    @serve.deployment(name="LLM:fake")
    class FakeLLMServer:
        def __init__(self, llm_config: dict[str, Any]) -> None:
            self.llm_config = llm_config

    def fake_builder(llm_args: dict[str, Any]) -> tuple[Any, str]:
        built.update(llm_args["llm_config"])
        return FakeLLMServer.bind(llm_config=llm_args["llm_config"]), llm_args["llm_config"]["model_loading_config"][
            "model_id"
        ]

    args = profile_args("serve.gpu.yaml")
    graph = deployments(build_application(args, llm_builder=fake_builder))
    assert built["model_loading_config"]["model_source"] == "Qwen/Qwen2.5-7B-Instruct"
    assert built["deployment_config"]["autoscaling_config"]["max_replicas"] >= 1
    assert "LLM:fake" in graph
    translator = graph["TranslatorDeployment"]
    assert translator.init_kwargs["llm_model_id"] == "qwen2.5-7b-instruct"
    assert deployments(translator.init_args[1]) == {"LLM:fake": graph["LLM:fake"]}
    asr = graph["ASRDeployment"]
    assert asr.ray_actor_options["num_gpus"] == 0.5
    assert asr.init_args[0]["asr"] == {"model": "large-v3", "device": "cuda", "compute_type": "float16", "beam_size": 5}
    names = ("ASRDeployment", "TranslatorDeployment", "TTSDeployment", "SeparatorDeployment", "DiarizerDeployment")
    for name in (*names, "JobRunner", "Ingress"):
        dep = graph[name]
        assert "num_gpus" in dep.ray_actor_options
        if name != "JobRunner":
            assert dep._deployment_config.autoscaling_config is not None
    for name in ("SeparatorDeployment", "DiarizerDeployment"):  # onnxruntime on CPU
        assert graph[name].ray_actor_options["num_gpus"] == 0 and graph[name].ray_actor_options["num_cpus"] >= 1


def test_options_validation_and_defaults() -> None:
    assert deployment_options({}, "asr")["num_replicas"] == 1
    scaled = deployment_options(
        {"deployments": {"asr": {"autoscaling_config": {"min_replicas": 1, "max_replicas": 3}}}}, "asr"
    )
    assert "num_replicas" not in scaled and scaled["max_ongoing_requests"] == 4
    with pytest.raises(ValueError, match="unknown Serve options"):
        deployment_options({"deployments": {"tts": {"num_cpu": 1}}}, "tts")


def test_replica_settings_make_paths_absolute(tmp_path: Path) -> None:
    overrides = replica_settings({"settings": {"storage": {"root": "var"}, "service": {"job_store_url": "sqlite:///var/j.db"}}},
                                 cwd=tmp_path)  # fmt: skip
    assert overrides["storage"]["root"] == str(tmp_path.resolve() / "var")
    assert overrides["service"]["job_store_url"] == f"sqlite:///{tmp_path.resolve()}/var/j.db"
    assert Path(overrides["LOG_DIR"]).is_absolute()
    with pytest.raises(ValueError):
        replica_settings({"settings": {"asr": {"device": "tpu"}}})
