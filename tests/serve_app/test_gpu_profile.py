"""Every GPU-only setting of configs/serve.gpu.yaml, checked on CPU: the profile through Serve's own schemas,
fractional ``num_gpus`` per deployment, the Ray Serve LLM ``LLMConfig`` (its fields read from Ray's source
without vLLM; the model itself and the vLLM engine arguments only where ``ray[llm]`` is installed, else that one
check is SKIPPED with the reason), and the GPU check that refuses the profile on a cluster without GPUs."""

from __future__ import annotations

import ast
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from serve_app.app import DEPLOYMENT_KEYS, build_app, deployment_options
from serve_app.errors import GPUUnavailable
from serve_app.resources import check_gpus, gpu_demand

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def gpu_profile() -> dict[str, Any]:
    data = yaml.safe_load((CONFIGS / "serve.gpu.yaml").read_text())
    assert isinstance(data, dict)
    return data


def gpu_args() -> dict[str, Any]:
    return dict(gpu_profile()["applications"][0]["args"])


def test_gpu_profile_through_serves_schemas() -> None:
    from ray import serve
    from ray.serve.schema import DeploymentSchema, RayActorOptionsSchema, ServeDeploySchema

    config = ServeDeploySchema.model_validate(gpu_profile())
    assert config.proxy_location == "EveryNode" and config.applications[0].import_path == "serve_app.app:build_app"
    args = gpu_args()
    for key in DEPLOYMENT_KEYS:
        options = deployment_options(args, key)
        DeploymentSchema.model_validate({"name": key, **options})  # Serve's own checks of every option
        actor = RayActorOptionsSchema.model_validate(options["ray_actor_options"])
        assert actor.num_gpus is not None and actor.num_cpus is not None
        serve.deployment(type(key, (), {}), **options)  # what build_app does with them
    llm_deployment = args["llm"]["llm_config"]["deployment_config"]
    DeploymentSchema.model_validate({"name": "LLM", **llm_deployment})


def test_fractional_gpus_per_deployment() -> None:
    args = gpu_args()
    asr_gpus = deployment_options(args, "asr")["ray_actor_options"]["num_gpus"]
    assert 0 < asr_gpus < 1  # two ASR replicas share one GPU
    demand = gpu_demand(args)
    assert demand == {"asr": (asr_gpus, 1), "llm": (1.0, 1)}  # CPU-only deployments ask for none
    check_gpus(args, available=1.5)  # fits: 0.5 + 1 at the minimum scale
    with pytest.raises(GPUUnavailable, match=r"needs 1\.5 GPUs at its minimum scale"):
        check_gpus(args, available=1.0)
    tp = {**args, "llm": {"llm_config": {**args["llm"]["llm_config"], "engine_kwargs": {"tensor_parallel_size": 2}}}}
    assert gpu_demand(tp)["llm"] == (2.0, 1)
    shared = {
        **args,
        "llm": {"llm_config": {**args["llm"]["llm_config"], "placement_group_config": {"bundles": [{"GPU": 0.5}]}}},
    }
    assert gpu_demand(shared)["llm"] == (0.5, 1)  # a small model sharing one GPU with ASR (tests/gpu)
    check_gpus(shared, available=1.0)
    standin = {**args, "llm": {**args["llm"], "standin": {"engine": "echo"}}}
    assert "llm" not in gpu_demand(standin)  # the CPU stand-in takes no GPU


def test_gpu_check_refuses_a_cluster_without_gpus_with_a_clear_message() -> None:
    with pytest.raises(GPUUnavailable) as info:
        check_gpus(gpu_args(), available=0.0)
    message = str(info.value)
    assert "no GPU" in message and "asr: 0.5 GPU x 1 replica(s)" in message and "serve.cpu.yaml" in message
    assert info.value.code == "gpu_unavailable"
    check_gpus({**gpu_args(), "gpu_check": "off"}, available=0.0)  # a cluster that adds GPU nodes on demand
    with pytest.raises(ValueError, match="gpu_check"):
        check_gpus({**gpu_args(), "gpu_check": "maybe"}, available=0.0)
    cpu = dict(yaml.safe_load((CONFIGS / "serve.cpu.yaml").read_text())["applications"][0]["args"])
    check_gpus(cpu, available=0.0)  # the CPU profile asks for none


@pytest.mark.ray
def test_gpu_profile_fails_fast_on_the_cpu_cluster_instead_of_hanging(ray_cluster: None) -> None:
    """The session's Ray cluster has no GPU: ``start_app`` (``videotranslator serve``) and ``build_app`` (``serve
    run``, a RayService) refuse at once; nothing is deployed."""
    from ray import serve

    from serve_app.server import start_app
    from tests.serve_app.conftest import free_port

    started = time.monotonic()
    with pytest.raises(GPUUnavailable, match="the Ray cluster has no GPU"):
        build_app(gpu_args())
    with pytest.raises(GPUUnavailable, match="the Ray cluster has no GPU"):
        start_app(CONFIGS / "serve.gpu.yaml", host="127.0.0.1", port=free_port(8000))
    assert time.monotonic() - started < 30
    assert "videotranslator" not in serve.status().applications


def _llm_config_fields() -> set[str]:
    """LLMConfig's fields, read from Ray's source (importing it needs vLLM)."""
    import ray

    path = Path(ray.__file__).parent / "llm/_internal/serve/core/configs/llm_config.py"
    tree = ast.parse(path.read_text())
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "LLMConfig")
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}


def test_llm_config_keys_and_accelerator_without_vllm() -> None:
    from ray.util import accelerators

    llm = gpu_args()["llm"]["llm_config"]
    fields = _llm_config_fields()
    assert {"model_loading_config", "engine_kwargs", "accelerator_type", "deployment_config"} <= fields
    assert set(llm) <= fields, set(llm) - fields
    assert set(llm["model_loading_config"]) <= {"model_id", "model_source", "tokenizer_source"}
    known = {v for k, v in vars(accelerators).items() if k.isupper() and isinstance(v, str)}
    assert llm["accelerator_type"] in known


def test_llm_config_and_vllm_engine_arguments() -> None:
    """The one check that needs ``ray[llm]`` (vLLM): skipped, with the reason in the report, where it is missing."""
    try:
        from ray.serve.llm import LLMConfig
        from vllm.engine.arg_utils import AsyncEngineArgs
    except ImportError as exc:
        pytest.skip(f"NOT CHECKED: LLMConfig and the vLLM engine arguments need ray[llm] (vLLM): {exc}")
    llm = gpu_args()["llm"]["llm_config"]
    config = LLMConfig(**llm)
    assert config.model_id == llm["model_loading_config"]["model_id"]
    engine_fields = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    assert set(llm["engine_kwargs"]) <= engine_fields, set(llm["engine_kwargs"]) - engine_fields


def test_a_bad_standin_is_refused_at_build_time() -> None:
    from serve_app.app import build_application

    args = gpu_args()
    for standin in ({"engine": "gpt"}, {"engine": "echo", "temperature": 1}):
        with pytest.raises(ValueError, match="llm.standin takes engine"):
            build_application({**args, "llm": {**args["llm"], "standin": standin}})


def test_gpu_profile_without_ray_llm_is_one_clear_error() -> None:
    """Where vLLM is missing, the GPU profile's LLM deployment cannot be built: a domain error the CLI prints as one
    line (on a machine that has it, the builder is Ray's own and this says nothing)."""
    from pipelines.errors import BackendUnavailable
    from serve_app.app import build_application

    try:
        import ray.serve.llm  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailable, match=r"pip install 'videotranslator\[gpu\]'"):
            build_application(gpu_args())
    else:
        assert build_application(gpu_args()) is not None
