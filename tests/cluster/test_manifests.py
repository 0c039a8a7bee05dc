"""Schema checks for cluster/: the `ray up` config against Ray's own schema, and the KubeRay manifests
against a schema written from the KubeRay ray.io/v1 CRD fields (`kubectl --dry-run=client` needs an API
server to know the CRDs, so it cannot run offline), plus their resources against configs/serve.gpu.yaml."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"

_QTY = {"anyOf": [{"type": "string", "pattern": r"^[0-9.]+(m|Ki|Mi|Gi|Ti)?$"}, {"type": "integer"}, {"type": "number"}]}
_RESOURCES = {
    "type": "object", "additionalProperties": False,
    "properties": {k: {"type": "object", "additionalProperties": _QTY} for k in ("requests", "limits")},
}  # fmt: skip
_CONTAINER = {
    "type": "object", "required": ["name", "image"],
    "properties": {"name": {"type": "string"}, "image": {"type": "string"}, "resources": _RESOURCES,
                   "ports": {"type": "array"}, "env": {"type": "array"}, "volumeMounts": {"type": "array"}},
    "additionalProperties": False,
}  # fmt: skip
_POD = {
    "type": "object", "required": ["spec"],
    "properties": {"metadata": {"type": "object"}, "spec": {
        "type": "object", "required": ["containers"], "additionalProperties": False,
        "properties": {"containers": {"type": "array", "minItems": 1, "items": _CONTAINER}, "volumes": {"type": "array"},
                       "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
                       "tolerations": {"type": "array"}, "serviceAccountName": {"type": "string"}}}},
}  # fmt: skip
_START_PARAMS = {"type": "object", "additionalProperties": {"type": "string"}}
_CLUSTER_SPEC = {
    "type": "object", "required": ["headGroupSpec"], "additionalProperties": False,
    "properties": {
        "rayVersion": {"type": "string"}, "enableInTreeAutoscaling": {"type": "boolean"},
        "autoscalerOptions": {"type": "object"},
        "headGroupSpec": {"type": "object", "required": ["template"], "additionalProperties": False,
                          "properties": {"rayStartParams": _START_PARAMS, "template": _POD, "serviceType": {"type": "string"}}},
        "workerGroupSpecs": {"type": "array", "items": {
            "type": "object", "required": ["groupName", "template"], "additionalProperties": False,
            "properties": {"groupName": {"type": "string"}, "replicas": {"type": "integer", "minimum": 0},
                           "minReplicas": {"type": "integer", "minimum": 0}, "maxReplicas": {"type": "integer", "minimum": 1},
                           "rayStartParams": _START_PARAMS, "template": _POD}}},
    },
}  # fmt: skip
_META = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}}}
SCHEMAS: dict[str, dict[str, Any]] = {
    "RayService": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayService"}, "metadata": _META, "spec": {
            "type": "object", "required": ["serveConfigV2", "rayClusterConfig"], "additionalProperties": False,
            "properties": {"serveConfigV2": {"type": "string"}, "rayClusterConfig": _CLUSTER_SPEC,
                           "serviceUnhealthySecondThreshold": {"type": "integer"},
                           "deploymentUnhealthySecondThreshold": {"type": "integer"}}}},
    },
    "RayJob": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"const": "ray.io/v1"}, "kind": {"const": "RayJob"}, "metadata": _META, "spec": {
            "type": "object", "required": ["entrypoint", "rayClusterSpec"], "additionalProperties": False,
            "properties": {"entrypoint": {"type": "string"}, "runtimeEnvYAML": {"type": "string"}, "rayClusterSpec": _CLUSTER_SPEC,
                           "shutdownAfterJobFinishes": {"type": "boolean"}, "ttlSecondsAfterFinished": {"type": "integer"},
                           "activeDeadlineSeconds": {"type": "integer"}, "backoffLimit": {"type": "integer"},
                           "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode"]}}}},
    },
}  # fmt: skip


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((CLUSTER / name).read_text())
    assert isinstance(data, dict)
    return data


def cpu(q: str | float) -> float:
    text = str(q)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def pod_resources(group: dict[str, Any]) -> tuple[float, float]:
    """(CPUs, GPUs) one pod of a worker group offers Ray: its container limits."""
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    return cpu(limits["cpu"]), float(limits.get("nvidia.com/gpu", 0))


@pytest.fixture(scope="module")
def serve_gpu() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "configs" / "serve.gpu.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_ray_up_config_matches_rays_schema() -> None:
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = load("ray-cluster.yaml")
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"].get("GPU", 0) == 0
    gpu_types = [t for t in types.values() if t["resources"].get("GPU", 0) > 0]
    assert gpu_types and all(t["min_workers"] == 0 < t["max_workers"] for t in gpu_types)  # autoscaling from zero
    assert sum(t["max_workers"] for t in types.values() if "max_workers" in t) <= config["max_workers"]


@pytest.mark.parametrize("name", ["kuberay/rayservice.yaml", "kuberay/rayjob.yaml"])
def test_kuberay_manifests_pass_the_schema(name: str) -> None:
    import ray

    doc = load(name)
    jsonschema.validate(doc, SCHEMAS[doc["kind"]])
    spec = doc["spec"].get("rayClusterConfig") or doc["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == ray.__version__
    for group in spec["workerGroupSpecs"]:
        assert group.get("minReplicas", 0) <= group.get("replicas", 0) <= group["maxReplicas"]
        res = group["template"]["spec"]["containers"][0]["resources"]
        assert res["requests"] == res["limits"]  # Guaranteed QoS: Ray sees exactly what the pod gets
    gpu = [g for g in spec["workerGroupSpecs"] if pod_resources(g)[1] > 0]
    assert gpu, "a GPU worker group"


def _gpu_group(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"].get("rayClusterConfig") or doc["spec"]["rayClusterSpec"]
    return next(g for g in spec["workerGroupSpecs"] if pod_resources(g)[1] > 0)


def test_rayservice_serves_configs_serve_gpu_and_fits_its_resources(serve_gpu: dict[str, Any]) -> None:
    doc = load("kuberay/rayservice.yaml")
    assert yaml.safe_load(doc["spec"]["serveConfigV2"]) == serve_gpu  # the same app, deployments and options
    app = serve_gpu["applications"][0]
    assert app["import_path"] == "serve_app.app:build_app"
    groups = doc["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    pods = [pod_resources(g) for g in groups]
    gpus_at_max = 0.0
    for name, options in app["args"]["deployments"].items():
        actor = options.get("ray_actor_options", {})
        need = (actor.get("num_cpus", 1), actor.get("num_gpus", 0))
        assert any(need[0] <= c and need[1] <= g for c, g in pods), f"{name} fits no pod"
        replicas = options.get("autoscaling_config", {}).get("max_replicas", options.get("num_replicas", 1))
        gpus_at_max += need[1] * replicas
    llm = app["args"]["llm"]["llm_config"]
    tp = llm.get("engine_kwargs", {}).get("tensor_parallel_size", 1) * llm.get("engine_kwargs", {}).get("pipeline_parallel_size", 1)
    gpus_at_max += tp * llm["deployment_config"]["autoscaling_config"]["max_replicas"]
    gpu = _gpu_group(doc)
    per_pod = pod_resources(gpu)[1]
    assert tp <= per_pod  # one engine replica fits one pod
    from serve_app.resources import check_gpus

    check_gpus(app["args"], available=gpu["minReplicas"] * per_pod)  # build_app's GPU check passes at min scale
    assert gpu["maxReplicas"] == math.ceil(gpus_at_max / per_pod)  # enough GPUs at max scale, and no more
    product = gpu["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.product"]
    assert llm["accelerator_type"] in product  # pods land on the GPU type the LLM deployment asks for


def test_rayservice_is_never_keyless_public(serve_gpu: dict[str, Any]) -> None:
    """Issue 12, item 10: Serve listens on 0.0.0.0 there, so every pod (the build task and the replicas may run
    on any of them) gets VT_API_KEYS from a Secret (required: a pod without it does not start) and the
    names clients use in VT_SERVICE__ALLOWED_HOSTS; no key is written in the manifest or the profile."""
    from configs.settings import Settings

    doc = load("kuberay/rayservice.yaml")
    assert yaml.safe_load(doc["spec"]["serveConfigV2"])["http_options"]["host"] == "0.0.0.0"
    spec = doc["spec"]["rayClusterConfig"]
    pods = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    containers = [c for pod in pods for c in pod["spec"]["containers"]]
    assert len(containers) == 3
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        ref = env["VT_API_KEYS"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "videotranslator-api-keys", "key": "keys"} and "value" not in env["VT_API_KEYS"]
        listed = env["VT_SERVICE__ALLOWED_HOSTS"]["value"]
        hosts = Settings(_env_file=None, service={"allowed_hosts": listed}).service.allowed_hosts  # type: ignore[call-arg]
        assert "videotranslator-serve-svc" in hosts and "*" not in hosts
    for text in ((CLUSTER / "kuberay/rayservice.yaml").read_text(), (ROOT / "configs/serve.gpu.yaml").read_text()):
        assert "api_keys" not in text
    assert serve_gpu["http_options"]["host"] == "0.0.0.0"


def test_rayjob_runs_the_batch_on_the_same_gpu_pods() -> None:
    job, svc = load("kuberay/rayjob.yaml"), load("kuberay/rayservice.yaml")
    assert job["spec"]["entrypoint"].startswith("python -m pipelines.batch ")
    def without_env(pod: dict[str, Any]) -> dict[str, Any]:
        return {**pod, "spec": {**pod["spec"], "containers": [
            {k: v for k, v in c.items() if k != "env"} for c in pod["spec"]["containers"]]}}  # fmt: skip

    job_pod, service_pod = _gpu_group(job)["template"], _gpu_group(svc)["template"]
    assert without_env(job_pod) == without_env(service_pod)  # the requests of configs/serve.gpu.yaml
    job_env = {e["name"] for e in job_pod["spec"]["containers"][0]["env"]}
    service_env = {e["name"] for e in service_pod["spec"]["containers"][0]["env"]}
    assert job_env == service_env - {"VT_API_KEYS", "VT_SERVICE__ALLOWED_HOSTS"}  # the same state, no API keys
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    from configs.settings import BatchSettings

    known = set(BatchSettings.model_fields)
    batch = {k.removeprefix("VT_BATCH__").lower(): float(v) for k, v in env.items() if k.startswith("VT_BATCH__")}
    assert set(batch) <= known, set(batch) - known
    gpus = (batch["asr_actors"] + batch["translate_actors"]) * batch["num_gpus_per_actor"]
    gpu = _gpu_group(job)
    assert gpus <= gpu["maxReplicas"] * pod_resources(gpu)[1]  # every GPU actor can start
    assert batch["num_cpus_per_actor"] <= pod_resources(gpu)[0]


def _makefile_var(name: str) -> str:
    import re

    match = re.search(rf"^{name} := (.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"{name} is not set in the Makefile"
    return match.group(1).strip()


def test_llama_cpp_builds_are_portable_everywhere() -> None:
    """The Makefile and the cluster image build llama-cpp-python with the same portable flags: no
    -march=native (a wheel built on one CPU dies with SIGILL on another) and no AMX kernels (they segfault)."""
    import re

    portable = _makefile_var("LLAMA_PORTABLE").split()
    assert "-DGGML_NATIVE=OFF" in portable
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(portable)
    docker = (CLUSTER / "Dockerfile").read_text()
    env = re.search(r'^ENV CMAKE_ARGS="([^"]*)"$', docker, re.MULTILINE)
    assert env, "cluster/Dockerfile does not set CMAKE_ARGS"
    assert env.group(1).split() == portable
    assert docker.index("ENV CMAKE_ARGS") < docker.index("RUN pip install")


# ----------------------------------------------------------------------------- state outside the pods (issue 19)

STATE_ENV = ("VT_SERVICE__JOB_STORE_URL", "VT_STORAGE__ROOT", "VT_STORAGE__CACHE_DIR")


def _pods(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"].get("rayClusterConfig") or doc["spec"]["rayClusterSpec"]
    return [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]


def _shared_state() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay/shared-state.yaml").read_text()))
    return {d["kind"]: d for d in docs}


def test_shared_state_manifest_offers_a_rwx_volume_and_the_secret() -> None:
    state = _shared_state()
    assert set(state) == {"PersistentVolumeClaim", "Secret"}
    pvc = state["PersistentVolumeClaim"]
    assert pvc["apiVersion"] == "v1" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # every pod mounts it
    assert pvc["spec"]["resources"]["requests"]["storage"].endswith("Gi")
    secret = state["Secret"]["stringData"]
    assert secret["job-store-url"].startswith("postgresql://")  # what make_job_store opens as PostgresJobStore


@pytest.mark.parametrize("name", ["kuberay/rayservice.yaml", "kuberay/rayjob.yaml"])
def test_every_pod_keeps_jobs_and_files_outside_itself(name: str) -> None:
    """Jobs in PostgreSQL and files on the ReadWriteMany volume, on EVERY pod (the head builds the app and
    resolves the replicas' settings; any worker may host an ingress or the job runner)."""
    state = _shared_state()
    claim, secret = state["PersistentVolumeClaim"]["metadata"]["name"], state["Secret"]
    for pod in _pods(load(name)):
        shared = [v["name"] for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == claim]
        assert len(shared) == 1, pod["volumes"]
        for container in pod["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert set(STATE_ENV) <= set(env)
            ref = env["VT_SERVICE__JOB_STORE_URL"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"] and not ref.get("optional")
            for e in env.values():  # every key a pod reads from the state secret exists in it
                key = e.get("valueFrom", {}).get("secretKeyRef")
                if key is not None and key["name"] != "videotranslator-api-keys":  # that one: kubectl create secret
                    assert key["name"] == secret["metadata"]["name"] and key["key"] in secret["stringData"]
            mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == shared[0])
            for var in ("VT_STORAGE__ROOT", "VT_STORAGE__CACHE_DIR"):
                assert Path(env[var]["value"]).is_relative_to(mount), (var, mount)


def test_the_profile_lets_the_pod_environment_choose_the_store_and_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/serve.gpu.yaml sets neither job_store_url nor storage.root (profile args override the environment),
    so the settings the RayService's pods get reach every replica through build_app."""
    from serve_app.app import replica_settings

    args = yaml.safe_load((ROOT / "configs/serve.gpu.yaml").read_text())["applications"][0]["args"]
    assert "job_store_url" not in args["settings"]["service"] and "storage" not in args["settings"]
    svc = {e["name"]: e.get("value") for e in _pods(load("kuberay/rayservice.yaml"))[0]["containers"][0]["env"]}
    url = _shared_state()["Secret"]["stringData"]["job-store-url"]
    monkeypatch.setenv("VT_SERVICE__JOB_STORE_URL", url)
    monkeypatch.setenv("VT_STORAGE__ROOT", svc["VT_STORAGE__ROOT"])
    monkeypatch.setenv("VT_STORAGE__CACHE_DIR", svc["VT_STORAGE__CACHE_DIR"])
    overrides = replica_settings(args)
    from configs.settings import Settings

    replica = Settings(**overrides)
    assert replica.service.job_store_url == url
    assert str(replica.storage.root) == svc["VT_STORAGE__ROOT"] and overrides["storage"]["root"] == svc["VT_STORAGE__ROOT"]


def test_rayjob_batch_reads_and_writes_s3_with_the_endpoint_setting() -> None:
    job = load("kuberay/rayjob.yaml")
    entry = job["spec"]["entrypoint"]
    assert "--input s3://" in entry and "--output s3://" in entry
    names = {e["name"] for pod in _pods(job) for c in pod["containers"] for e in c["env"]}
    assert {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= names
    import inspect

    from pipelines.batch import storage_uri

    # the variable the batch's S3 filesystem reads (tests/pipelines/batch/test_storage_uri.py runs it against moto)
    assert "AWS_ENDPOINT_URL" in inspect.getsource(storage_uri)
