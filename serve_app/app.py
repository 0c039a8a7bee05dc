"""``build_app(args) -> serve.Application``: the ONE place where stage classes become Serve deployments.

Following Ray Serve LLM's builder, the classes in ``serve_app.deployments`` are plain; here each is
wrapped with ``serve.deployment(cls, **options).bind(...)``, the options (``ray_actor_options``,
``max_ongoing_requests``, ``autoscaling_config``, ...) coming from the profile YAML
(``configs/serve.cpu.yaml``, ``configs/serve.gpu.yaml``). ``serve run configs/serve.cpu.yaml`` calls
``build_app`` with the file's ``args``:

    settings:     overrides for the Settings tree (env, .env and settings.yaml still apply under them)
    deployments:  {ingress|asr|translator|tts|separator|diarizer|job_runner: Serve deployment options}
    llm:          optional; {llm_config: <ray.serve.llm.LLMConfig fields>}: the translator then calls a
                  Ray Serve LLM (vLLM) deployment through its handle instead of loading a model itself;
                  with {standin: {engine: llama_cpp|echo, translator: {...}}} next to it, a CPU stand-in
                  with the same handle interface (serve_app.llm_standin) takes vLLM's place
    gpu_check:    fail (default) | off: refuse a profile whose GPU demand the cluster cannot meet
                  (serve_app.resources); off for a cluster that adds GPU nodes on demand
"""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configs.settings import Settings
from serve_app.deployments import (
    ASRDeployment,
    DiarizerDeployment,
    JobRunner,
    LLMTranslatorDeployment,
    SeparatorDeployment,
    TranslatorDeployment,
    TTSDeployment,
)

if TYPE_CHECKING:
    from ray.serve import Application

logger = logging.getLogger(__name__)

APP_NAME = "videotranslator"
DEPLOYMENT_KEYS = ("ingress", "asr", "translator", "tts", "separator", "diarizer", "job_runner")
# What Serve accepts in serve.deployment(**options); anything else in the YAML is a mistake.
ALLOWED_OPTIONS = frozenset({
    "name", "num_replicas", "ray_actor_options", "max_ongoing_requests", "max_queued_requests",
    "autoscaling_config", "user_config", "health_check_period_s", "health_check_timeout_s",
    "graceful_shutdown_wait_loop_s", "graceful_shutdown_timeout_s", "placement_group_bundles",
    "placement_group_strategy", "max_replicas_per_node", "request_router_config", "logging_config",
})  # fmt: skip
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "ingress": {"num_replicas": 1, "max_ongoing_requests": 100, "ray_actor_options": {"num_cpus": 0.1}},
    "asr": {"num_replicas": 1, "max_ongoing_requests": 4, "ray_actor_options": {"num_cpus": 0.5}},
    "translator": {"num_replicas": 1, "max_ongoing_requests": 4, "ray_actor_options": {"num_cpus": 0.5}},
    "tts": {"num_replicas": 1, "max_ongoing_requests": 4, "ray_actor_options": {"num_cpus": 0.25}},
    # Separation and diarization run on onnxruntime's CPU provider (no GPU whatever the profile).
    "separator": {"num_replicas": 1, "max_ongoing_requests": 2, "ray_actor_options": {"num_cpus": 0.25}},
    "diarizer": {"num_replicas": 1, "max_ongoing_requests": 2, "ray_actor_options": {"num_cpus": 0.1}},
    # One replica: it owns the worker threads that claim jobs (more would run jobs twice as fast, not twice).
    "job_runner": {"num_replicas": 1, "max_ongoing_requests": 16, "ray_actor_options": {"num_cpus": 0.05}},
}
LLMBuilder = Callable[[Mapping[str, Any]], tuple[Any, str]]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def deployment_options(args: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Serve options for one deployment: the defaults, overridden by ``args["deployments"][key]``.
    ``autoscaling_config`` replaces ``num_replicas`` (Serve refuses both). Raises ValueError on unknown keys."""
    given = dict((args.get("deployments") or {}).get(key) or {})
    unknown = set(given) - ALLOWED_OPTIONS
    if unknown:
        raise ValueError(f"deployments.{key}: unknown Serve options {sorted(unknown)}")
    options = deep_merge(DEFAULT_OPTIONS[key], given)
    if "autoscaling_config" in given:
        options.pop("num_replicas", None)
    return options


def _absolute(path: str | Path, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else base / p)


def replica_settings(args: Mapping[str, Any], *, cwd: Path | None = None) -> dict[str, Any]:
    """The settings overrides every replica is built from: ``args["settings"]`` with relative paths made
    absolute against the driver's folder (replicas may start elsewhere). Validated here, so a bad profile
    fails at build time, not in a replica."""
    base = (cwd or Path.cwd()).resolve()
    overrides = deep_merge({}, args.get("settings") or {})
    settings = Settings(**overrides)
    storage = overrides.setdefault("storage", {})
    storage["root"] = _absolute(settings.storage.root, base)
    storage["cache_dir"] = _absolute(settings.storage.cache_dir, base)
    storage["models_dir"] = _absolute(settings.storage.models_dir, base)
    overrides["LOG_DIR"] = _absolute(settings.LOG_DIR, base)
    url = settings.service.job_store_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        overrides.setdefault("service", {})["job_store_url"] = "sqlite:///" + _absolute(url[len("sqlite:///") :], base)
    Settings(**overrides)
    return overrides


def replica_logging(settings: Settings) -> None:
    """Our INFO logs (per-request lines with job ids, job progress) to the replica's stderr, which Ray keeps
    in its worker logs and forwards to the driver. Leaves Serve's own handlers alone."""
    from configs.logging import FORMAT

    for name in ("serve_app", "pipelines"):
        log = logging.getLogger(name)
        log.setLevel(settings.LOG_LEVEL.upper())
        if not any(getattr(h, "_vt_replica", False) for h in log.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(FORMAT))
            handler._vt_replica = True  # type: ignore[attr-defined]
            log.addHandler(handler)
            log.propagate = False


def serve_http_host() -> str:
    """The address Serve's HTTP proxies listen on: the running Serve instance's ``http_options.host``, asked of
    its controller (so it is the real one in ``serve run``'s and KubeRay's build task, in ``videotranslator
    serve`` and in a replica); with no Serve running, the host ``serve.run`` would start it with (Ray's default)."""
    import ray
    from ray.serve.config import HTTPOptions

    if ray.is_initialized():  # never start a Ray just to ask
        from ray.serve.context import _get_global_client

        client = _get_global_client(raise_if_no_controller_running=False)
        if client is not None:  # else no Serve instance yet: serve.run will start one with the defaults
            return str(client.http_config.host)
    return str(HTTPOptions().host)


def check_public_bind(settings: Settings, host: str | None = None) -> None:
    """The start-up rule on every path to the Serve app (``serve run``, KubeRay, ``videotranslator serve``,
    ``serve.run(build_app(...))``): raise InsecureStartup when Serve's HTTP address (``host``, default
    ``serve_http_host()``) is not loopback and ``service.api_keys`` (VT_API_KEYS) is empty."""
    from serve_app.auth import require_keys

    require_keys(host or serve_http_host(), settings.service.api_keys, what="the HTTP service")


class Ingress:
    """The FastAPI ingress deployment; its app is built in the replica (``__serve_build_asgi_app__``)
    from ``get_application`` with services over the model deployments' handles."""

    def __init__(self, settings: Mapping[str, Any], asr: Any, translator: Any, tts: Any, job_runner: Any) -> None:
        from serve_app.api.services import DeploymentClient, Services
        from serve_app.jobs.wiring import build_job_service

        s = Settings(**dict(settings))
        check_public_bind(s)  # again in the replica: an app built before Serve started is checked here
        replica_logging(s)
        jobs = build_job_service(s)
        self.services = Services(
            settings=s,
            jobs=jobs,
            storage=jobs.storage,
            asr=DeploymentClient(asr),
            translator=DeploymentClient(translator),
            tts=DeploymentClient(tts),
            job_runner=DeploymentClient(job_runner),
        )

    def __serve_build_asgi_app__(self) -> Any:
        from serve_app.api.main import get_application

        return get_application(self.services.settings, services=self.services)


class ServeJobRunner(JobRunner):
    """JobRunner with replica logging (the plain class stays free of logging set-up)."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        asr: Any,
        translator: Any,
        tts: Any,
        separator: Any = None,
        diarizer: Any = None,
    ) -> None:
        replica_logging(Settings(**dict(settings)))
        super().__init__(settings, asr, translator, tts, separator, diarizer)


def build_llm_app(llm_args: Mapping[str, Any]) -> tuple[Any, str]:
    """A Ray Serve LLM (vLLM) deployment from ``llm_args["llm_config"]``, and its model id."""
    try:
        from ray.serve.llm import LLMConfig, build_llm_deployment
    except ImportError as exc:  # a domain error: one line on the CLI, not a traceback
        from pipelines.errors import BackendUnavailable

        raise BackendUnavailable(
            "the GPU profile needs Ray Serve LLM with vLLM: pip install 'videotranslator[gpu]' (or llm.standin on CPU)"
        ) from exc
    config = LLMConfig(**dict(llm_args["llm_config"]))
    return build_llm_deployment(config, name_prefix="LLM:"), config.model_id


def build_app(args: Mapping[str, Any]) -> Application:
    """The Serve application: Ingress → {ASR, Translator (→ optional LLM), TTS} + JobRunner → {the same three,
    Separator, Diarizer}.

    ``serve run`` calls this with the profile's ``args`` (Serve requires exactly one parameter). Nothing is
    deployed here; ``serve.run`` or ``serve run`` does that. Raises InsecureStartup when Serve listens on a
    non-loopback address and there are no API keys (``check_public_bind``): that rule comes first, whatever
    else is wrong. Connected to Ray, it then checks the profile's GPU demand against the cluster
    (``serve_app.resources.check_gpus``: GPUUnavailable instead of a ``serve.run`` that waits forever).
    """
    args = dict(args or {})
    import ray

    check_public_bind(Settings(**replica_settings(args)))
    if ray.is_initialized():  # serve run, videotranslator serve, a RayService: refuse GPUs the cluster lacks
        from serve_app.resources import check_gpus

        check_gpus(args)
    return build_application(args)


def build_standin_llm_app(llm_args: Mapping[str, Any]) -> tuple[Any, str]:
    """``llm.standin``: the CPU stand-in for the Ray Serve LLM deployment (``serve_app.llm_standin``)."""
    from serve_app.llm_standin import build_standin_llm_app as build

    return build(llm_args)


def build_application(args: Mapping[str, Any] | None = None, *, llm_builder: LLMBuilder | None = None) -> Application:
    """``build_app`` with a seam: ``llm_builder`` replaces ``build_llm_app`` (tests build the GPU profile on
    CPU, without vLLM)."""
    from ray import serve

    args = dict(args or {})
    settings = replica_settings(args)
    check_public_bind(Settings(**settings))

    def wrap(cls: type, key: str, name: str) -> Any:
        return serve.deployment(cls, **{"name": name, **deployment_options(args, key)})

    asr = wrap(ASRDeployment, "asr", "ASRDeployment").bind(settings)
    if args.get("llm"):
        llm = args["llm"]
        llm_app, model_id = (llm_builder or (build_standin_llm_app if llm.get("standin") else build_llm_app))(llm)
        translator_cls = wrap(LLMTranslatorDeployment, "translator", "TranslatorDeployment")
        translator = translator_cls.bind(settings, llm_app, llm_model_id=model_id)
    else:
        translator = wrap(TranslatorDeployment, "translator", "TranslatorDeployment").bind(settings)
    tts = wrap(TTSDeployment, "tts", "TTSDeployment").bind(settings)
    # Only the job runner calls these two (the HTTP API has no endpoint of its own for them).
    separator = wrap(SeparatorDeployment, "separator", "SeparatorDeployment").bind(settings)
    diarizer = wrap(DiarizerDeployment, "diarizer", "DiarizerDeployment").bind(settings)
    runner = wrap(ServeJobRunner, "job_runner", "JobRunner")
    job_runner = runner.bind(settings, asr, translator, tts, separator, diarizer)
    ingress = wrap(serve.ingress()(Ingress), "ingress", "Ingress")
    return ingress.bind(settings, asr, translator, tts, job_runner)  # type: ignore[no-any-return]
