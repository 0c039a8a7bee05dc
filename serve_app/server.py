"""``run_server``: what ``videotranslator serve`` runs. Starts a local Ray (with its dashboard) and the
Serve app from a profile YAML, prints where the UI, the API docs and the dashboard are, and blocks until
SIGINT or SIGTERM, then shuts Serve and Ray down."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("configs/serve.cpu.yaml")
DASHBOARD_PORT = 8265
# Serve's proxy hands request bodies to the ingress replica through Ray's object store, and Ray frees unused
# objects in batches, once a second by default: the store's pages touched by both processes grow by about a
# second of upload traffic (~360 MB at 200 MB/s). Freeing every 100 ms keeps that near 30 MB (docs/BENCHMARKS.md,
# "Resumable uploads through Serve"). Only for a Ray this process starts; RAY_free_objects_period_milliseconds wins.
RAY_SYSTEM_CONFIG = {"free_objects_period_milliseconds": 100}


@dataclass(frozen=True)
class ServerInfo:
    ui_url: str
    docs_url: str
    dashboard_url: str | None
    startup_s: float


def load_profile(config_path: str | Path) -> dict[str, Any]:
    """A Serve config file (the ``serve run`` format). Raises FileNotFoundError, ValueError."""
    data = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
    apps = data.get("applications") or []
    if len(apps) != 1:
        raise ValueError(f"{config_path}: expected exactly one application, found {len(apps)}")
    return dict(data)


def _print_info(info: ServerInfo) -> None:
    lines = [
        f"VideoTranslator is ready after {info.startup_s:.1f} s",
        f"  UI:             {info.ui_url}",
        f"  API docs:       {info.docs_url}",
        f"  Ray dashboard:  {info.dashboard_url or 'not running'}",
        "Press Ctrl+C (or send SIGTERM) to stop.",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


_dashboard: dict[str, str | None] = {}


def init_ray(dashboard_port: int = DASHBOARD_PORT) -> str | None:
    """Start a local Ray with its dashboard on 127.0.0.1 (or join ``RAY_ADDRESS``); returns the dashboard's
    address. Does nothing when Ray is already initialised (then returns what the first call returned)."""
    import ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        own = {k: v for k, v in RAY_SYSTEM_CONFIG.items() if f"RAY_{k}" not in os.environ}
        context = ray.init(
            address=address,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=dashboard_port,
            configure_logging=False,
            **({"_system_config": own} if own and not address else {}),
        )
        _dashboard["url"] = context.dashboard_url or None
    return _dashboard.get("url")


def start_app(config_path: str | Path, host: str | None = None, port: int | None = None,
              *, dashboard_port: int = DASHBOARD_PORT, app_args: dict[str, Any] | None = None) -> ServerInfo:  # fmt: skip
    """Start Ray (or join ``RAY_ADDRESS``) and deploy the profile's app; returns once every deployment is up.
    ``app_args`` are merged over the profile's ``args`` (tests, benchmarks)."""
    from ray import serve

    from serve_app.app import build_app, deep_merge

    started = time.perf_counter()
    profile = load_profile(config_path)
    http = dict(profile.get("http_options") or {})
    host = host or http.get("host", "127.0.0.1")
    port = int(port or http.get("port", 8000))
    app_cfg = profile["applications"][0]
    args = deep_merge(app_cfg.get("args") or {}, app_args or {})
    check_bind(host, args)  # before Ray starts: a refused bind costs nothing
    dashboard = init_ray(dashboard_port)
    running = running_http_options()
    if running is not None and running != (host, port):
        # A running Serve keeps the HTTP options it was started with (serve.start ignores new ones), so the
        # app is served where that proxy listens: say so, and report the address that answers.
        logger.warning("Serve is already running in this Ray cluster on %s:%s; the app is served there, not on %s:%s",
                       running[0], running[1], host, port)  # fmt: skip
        host, port = running
        check_bind(host, args)
    serve.start(http_options={"host": host, "port": port}, proxy_location=profile.get("proxy_location", "HeadOnly"))
    name = app_cfg.get("name", "videotranslator")
    serve.run(build_app(args), name=name, route_prefix=app_cfg.get("route_prefix", "/"), blocking=False)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    wait_for_proxy(f"http://{shown}:{port}", app_cfg.get("route_prefix", "/"))
    dashboard_url = f"http://{dashboard}" if dashboard and not str(dashboard).startswith("http") else dashboard
    return ServerInfo(
        ui_url=f"http://{shown}:{port}/",
        docs_url=f"http://{shown}:{port}/docs",
        dashboard_url=dashboard_url or None,
        startup_s=time.perf_counter() - started,
    )


def running_http_options() -> tuple[str, int] | None:
    """The (host, port) of the Serve instance already running in the connected Ray cluster, or None."""
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:
        return None
    return str(client.http_config.host), int(client.http_config.port)


def wait_for_proxy(base_url: str, route_prefix: str, timeout_s: float = 120.0) -> None:
    """Return once Serve's HTTP proxy at ``base_url`` routes ``route_prefix`` (``serve.run`` returns when the
    replicas are up; a proxy started on a new port may still be binding). Raises TimeoutError."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            routes = httpx.get(f"{base_url}/-/routes", timeout=5.0)
            if routes.status_code == 200 and route_prefix in routes.json():
                return
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Serve's HTTP proxy at {base_url} does not route {route_prefix!r} after {timeout_s:.0f} s")
        time.sleep(0.25)


def check_bind(host: str, app_args: dict[str, Any] | None = None) -> None:
    """Raise InsecureStartup when ``host`` is not loopback and no API keys are set (env or the profile's
    ``args.settings.service.api_keys``)."""
    from configs.settings import Settings
    from serve_app.app import check_public_bind

    check_public_bind(Settings(**dict((app_args or {}).get("settings") or {})), host)


def _resolved_bind(config_path: str | Path, host: str | None) -> tuple[str, dict[str, Any]]:
    profile = load_profile(config_path)
    app_cfg = profile["applications"][0]
    return host or dict(profile.get("http_options") or {}).get("host", "127.0.0.1"), dict(app_cfg.get("args") or {})


def stop_app() -> None:
    """Shut Serve and Ray down (what run_server does on a signal)."""
    import ray
    from ray import serve

    try:
        serve.shutdown()  # type: ignore[no-untyped-call]
    finally:
        ray.shutdown()


def run_server(
    config_path: str | Path = DEFAULT_CONFIG,
    host: str | None = None,
    port: int | None = None,
    *,
    dashboard_port: int = DASHBOARD_PORT,
    on_ready: Callable[[ServerInfo], None] | None = None,
) -> None:
    """``videotranslator serve``: host/port default to the profile's ``http_options`` (127.0.0.1:8000).
    Blocks until SIGINT/SIGTERM (call it from the main thread), then shuts down cleanly."""
    check_bind(*_resolved_bind(config_path, host))  # before Ray starts: refuse an open, keyless bind at once
    stop = threading.Event()

    def _handle(signum: int, frame: Any) -> None:
        stop.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, _handle) for sig in signals}
    try:
        init_ray(dashboard_port)
        for sig in signals:  # ray.init installs its own SIGTERM handler (exit at once); ours shuts down cleanly
            signal.signal(sig, _handle)
        info = start_app(config_path, host, port, dashboard_port=dashboard_port)
        if not stop.is_set():
            (on_ready or _print_info)(info)
        while not stop.wait(0.5):
            pass
        logger.info("stopping")
    finally:
        try:
            stop_app()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
