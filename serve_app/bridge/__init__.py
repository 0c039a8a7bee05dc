"""The RabbitMQ JSON-RPC bridge (issue 4): consumer, method table, API publisher and entrypoints.

Importing this package pulls in aio-pika and jsonrpc-py but no Ray and no FastAPI.
"""

from __future__ import annotations

from serve_app.bridge.consumer import Bridge
from serve_app.bridge.main import build_bridge, run_bridge
from serve_app.bridge.methods import MethodContext, PipelineStages, Stages, build_methods
from serve_app.bridge.publisher import JobPublisher
from serve_app.bridge.rpc import DOMAIN_CODES, Outcome, RpcHandler, message_key
from serve_app.jobs.wiring import build_job_service

# The name bench/bridge.py imports; the one wiring is serve_app.jobs.wiring.build_job_service.
build_service = build_job_service

__all__ = [
    "DOMAIN_CODES",
    "Bridge",
    "JobPublisher",
    "MethodContext",
    "Outcome",
    "PipelineStages",
    "RpcHandler",
    "Stages",
    "build_bridge",
    "build_job_service",
    "build_methods",
    "build_service",
    "message_key",
    "run_bridge",
]
