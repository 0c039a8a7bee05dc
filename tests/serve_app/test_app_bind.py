"""Issue 12, item 10: the refusal to serve a public address without API keys lives in ``build_app``, the one
place every path passes (``videotranslator serve``, ``serve run``, KubeRay's serveConfigV2, a script's
``serve.run(build_app(...))``), and it reads the address Serve really listens on from Serve's controller."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serve_app.app import build_app
from serve_app.errors import InsecureStartup
from tests.serve_app.conftest import free_port
from tests.serve_app.test_app import CONFIGS, profile_args

pytestmark = [pytest.mark.ray, pytest.mark.slow]

APP = "bind-check"


@pytest.fixture
def public_serve(ray_cluster: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Serve on the session's Ray, its HTTP proxy on 0.0.0.0 (a free port), no API keys anywhere."""
    from ray import serve

    monkeypatch.delenv("VT_API_KEYS", raising=False)
    monkeypatch.delenv("VT_SERVICE__API_KEYS", raising=False)
    serve.shutdown()
    serve.start(http_options={"host": "0.0.0.0", "port": free_port()})
    try:
        yield
    finally:
        serve.shutdown()


def test_the_running_serves_address_is_what_build_app_checks(public_serve: None) -> None:
    import ray

    from serve_app.app import serve_http_host

    assert serve_http_host() == "0.0.0.0"
    # where `serve run` and KubeRay build the app: a task in the cluster, not the driver
    assert ray.get(ray.remote(num_cpus=0)(serve_http_host).remote()) == "0.0.0.0"


def test_build_app_refuses_a_public_bind_without_keys(public_serve: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InsecureStartup, match="refusing to start the HTTP service on 0.0.0.0 without API keys"):
        build_app(profile_args("serve.cpu.yaml"))
    monkeypatch.setenv("VT_API_KEYS", "sk-test-0123456789")
    build_app(profile_args("serve.cpu.yaml"))  # with a key it builds


def test_serve_run_and_kuberay_path_refuses_to_deploy_without_keys(public_serve: None) -> None:
    """What `serve run <config>` and KubeRay do: hand the config to Serve's controller, which builds the app
    in a task of its own. Nothing is deployed; the application fails with the start-up rule's message."""
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    from serve_app.server import load_profile

    profile = load_profile(CONFIGS / "serve.gpu.yaml")  # the public profile as written: 0.0.0.0, no keys
    app: dict[str, Any] = {**profile["applications"][0], "name": APP, "route_prefix": "/bind-check"}
    _get_global_client().deploy_apps(ServeDeploySchema.model_validate({"applications": [app]}))
    deadline = time.monotonic() + 120
    while True:
        status = serve.status().applications.get(APP)
        if status is not None and status.status == "DEPLOY_FAILED":
            break
        assert time.monotonic() < deadline, status
        assert status is None or status.status in ("NOT_STARTED", "DEPLOYING"), status
        time.sleep(0.5)
    assert "refusing to start the HTTP service on 0.0.0.0 without API keys" in status.message
    assert not status.deployments  # no replica was ever started


def test_the_ingress_replica_checks_again(public_serve: None, tmp_path: Path) -> None:
    """An app built before Serve was started (or by a builder of one's own) meets the rule in its Ingress replica:
    the replica does not start, so nothing is served."""
    from ray import serve

    from serve_app.app import Ingress

    settings = {"storage": {"root": str(tmp_path)}, "service": {"job_store_url": f"sqlite:///{tmp_path}/jobs.db"}}
    ingress = serve.deployment(serve.ingress()(Ingress), name="Ingress", max_constructor_retry_count=1)
    with pytest.raises(Exception, match="Failed to update the deployments"):
        serve.run(ingress.bind(settings, "asr", "translator", "tts", "job_runner"), name=APP, route_prefix="/ingress")
    status = serve.status().applications[APP].deployments["Ingress"]
    assert status.status == "DEPLOY_FAILED" and status.replica_states.get("RUNNING", 0) == 0
    assert "refusing to start the HTTP service on 0.0.0.0 without API keys" in status.message


def test_start_app_serves_where_a_running_serve_listens(ray_cluster: None, tmp_path: Path) -> None:
    """A Serve instance already running in the cluster keeps its HTTP options (``serve.start`` ignores new ones):
    ``start_app`` reports and waits for the address that really answers, not the port it was asked for (the
    fresh-clone CI failure: a module's app on a new port, behind a proxy another module had left on 8000)."""
    import httpx
    from ray import serve

    from serve_app.server import start_app

    serve.shutdown()
    first = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": first})
    try:
        settings = {"storage": {"root": str(tmp_path)}, "service": {"job_store_url": f"sqlite:///{tmp_path}/jobs.db"}}
        info = start_app(CONFIGS / "serve.cpu.yaml", host="127.0.0.1", port=free_port(), app_args={"settings": settings})
        assert info.ui_url == f"http://127.0.0.1:{first}/"
        health = httpx.get(f"{info.ui_url}healthz", timeout=30)
        assert health.status_code == 200 and health.json()["status"] == "success"
    finally:
        serve.shutdown()
