"""The RabbitMQ JSON-RPC bridge (issue 4): consumer, method table, API publisher and entrypoints.

Importing this package pulls in aio-pika and jsonrpc-py but no Ray and no FastAPI.
"""

from __future__ import annotations

from serve_app.bridge.consumer import Bridge
from serve_app.bridge.main import build_bridge, run_bridge
from serve_app.bridge.methods import BridgeModels, MethodContext, PipelineModels, build_methods
from serve_app.bridge.publisher import JobPublisher
from serve_app.bridge.rpc import DOMAIN_CODES, HandledMessage, RpcHandler, message_key
from serve_app.jobs.wiring import build_job_service

__all__ = [
    "DOMAIN_CODES",
    "Bridge",
    "BridgeModels",
    "HandledMessage",
    "JobPublisher",
    "MethodContext",
    "PipelineModels",
    "RpcHandler",
    "build_bridge",
    "build_job_service",
    "build_methods",
    "message_key",
    "run_bridge",
]
