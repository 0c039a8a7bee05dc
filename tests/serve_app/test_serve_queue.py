"""The Serve app (CPU profile, the bundled models) with ``queue.enabled``: its job runner consumes the REAL
RabbitMQ request queue, answers a ``translate_text`` request published with ``reply_to``, and leaves the
queue cleanly when the app shuts down."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serve_app.bridge.conftest import delete_names, queue_names
from tests.serve_app.bridge.test_embedded import consumer_count, rpc_round_trip
from tests.serve_app.conftest import free_port, make_settings

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.rabbitmq]

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "serve.cpu.yaml"


def test_serve_app_answers_translate_text_from_the_queue(ray_cluster: None, tmp_path: Path) -> None:
    from ray import serve

    from serve_app.server import start_app

    queue = queue_names(enabled=True)
    root = tmp_path / "var"
    args = {
        "settings": {
            "storage": {"root": str(root), "cache_dir": str(root / "cache")},
            "service": {"job_store_url": f"sqlite:///{root / 'jobs.db'}", "max_running_jobs": 1},
            "queue": queue.model_dump(),
        }
    }
    settings = make_settings(root)
    settings.queue = queue
    try:
        start_app(CONFIG, port=free_port(8000), app_args=args)
        try:
            reply, consumers = rpc_round_trip(settings, ["Hello, world."], timeout_s=240)
            assert reply["id"] == 7 and "error" not in reply, reply
            [text] = reply["result"]["translations"]
            assert text.strip() and text != "Hello, world.", reply
            assert consumers == 1
        finally:
            serve.shutdown()
        assert consumer_count(settings) == 0  # the replica stopped its consumer on shutdown
    finally:
        delete_names(queue, queue.request_queue + ".replies")
