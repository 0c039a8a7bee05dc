"""GPU demand of a profile against the Ray cluster: refuse at once what ``serve.run`` would wait for forever.

A Serve replica asking for a GPU that no node has stays PENDING_CREATION without an error, and ``serve.run``
waits with it. ``check_gpus`` (called by ``build_app`` and so by ``serve run``, ``videotranslator serve`` and a
RayService) compares what the profile needs at its minimum scale with the cluster's GPUs and raises
``GPUUnavailable`` with the deployments to change. A cluster whose autoscaler adds GPU nodes on demand (KubeRay
with a GPU group at ``minReplicas: 0``) sets ``gpu_check: off`` in the profile's args.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from serve_app.errors import GPUUnavailable

logger = logging.getLogger(__name__)

GPU_CHECK_VALUES = ("fail", "off")


def _min_replicas(options: Mapping[str, Any]) -> int:
    autoscaling = options.get("autoscaling_config")
    if autoscaling:
        return int(autoscaling.get("min_replicas", 1))
    replicas = options.get("num_replicas", 1)
    return 1 if replicas == "auto" else int(replicas)


def llm_gpus_per_replica(llm_config: Mapping[str, Any]) -> float:
    """GPUs one Ray Serve LLM (vLLM) replica takes: the GPUs of ``placement_group_config``'s bundles when given
    (``bundles``, or ``bundle_per_worker`` once per worker), else one per worker; workers = tensor x pipeline
    parallel size."""
    engine = dict(llm_config.get("engine_kwargs") or {})
    workers = int(engine.get("tensor_parallel_size", 1)) * int(engine.get("pipeline_parallel_size", 1))
    placement = dict(llm_config.get("placement_group_config") or {})
    if placement.get("bundles"):
        return float(sum(float(b.get("GPU", 0)) for b in placement["bundles"]))
    if placement.get("bundle_per_worker"):
        return float(placement["bundle_per_worker"].get("GPU", 0)) * workers
    return float(workers)


def gpu_demand(args: Mapping[str, Any]) -> dict[str, tuple[float, int]]:
    """Deployment → (GPUs per replica, minimum replicas), for those asking for a GPU. The LLM deployment counts
    only when it is vLLM (``llm.llm_config`` without ``llm.standin``)."""
    from serve_app.app import DEPLOYMENT_KEYS, deployment_options

    demand: dict[str, tuple[float, int]] = {}
    for key in DEPLOYMENT_KEYS:
        options = deployment_options(args, key)
        gpus = float((options.get("ray_actor_options") or {}).get("num_gpus", 0) or 0)
        if gpus > 0:
            demand[key] = (gpus, _min_replicas(options))
    llm = dict(args.get("llm") or {})
    if llm.get("llm_config") and not llm.get("standin"):
        config = dict(llm["llm_config"])
        demand["llm"] = (llm_gpus_per_replica(config), _min_replicas(dict(config.get("deployment_config") or {})))
    return demand


def cluster_gpus() -> float:
    """The GPUs of the Ray cluster this process is connected to (0.0 when it has none)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))  # type: ignore[no-untyped-call]


def check_gpus(args: Mapping[str, Any], available: float | None = None) -> None:
    """Raise GPUUnavailable when the profile's deployments need more GPUs at their minimum scale than the
    cluster has (``available``, default: ``cluster_gpus()``), or any GPU at all on a cluster with none.
    ``args["gpu_check"] = "off"`` skips the check; ValueError for any other value but ``fail``."""
    mode = str(args.get("gpu_check", "fail"))
    if mode not in GPU_CHECK_VALUES:
        raise ValueError(f"gpu_check must be one of {list(GPU_CHECK_VALUES)}, got {mode!r}")
    demand = gpu_demand(args)
    if mode == "off" or not demand:
        return
    have = cluster_gpus() if available is None else available
    need = sum(gpus * replicas for gpus, replicas in demand.values())
    asks = ", ".join(f"{name}: {gpus:g} GPU x {replicas} replica(s)" for name, (gpus, replicas) in demand.items())
    if have <= 0:
        raise GPUUnavailable(
            f"the Ray cluster has no GPU, but the profile asks for {asks}; on a CPU machine use "
            "configs/serve.cpu.yaml (or set ray_actor_options.num_gpus: 0 on those deployments); on a cluster "
            "that adds GPU nodes on demand set gpu_check: off in the profile's args"
        )
    if need > have + 1e-9:
        raise GPUUnavailable(
            f"the profile needs {need:g} GPUs at its minimum scale ({asks}), the Ray cluster has {have:g}; "
            "lower min_replicas or num_gpus, or add GPU nodes (gpu_check: off where an autoscaler adds them)"
        )
    logger.info("GPU check: %g of %g GPUs at minimum scale (%s)", need, have, asks)
