"""The HTTP ingress: a FastAPI app from ``get_application`` with routers per resource, schemas, CSRF
protection and one exception handler that produces the JSON envelope."""

from __future__ import annotations

from serve_app.api.main import get_application
from serve_app.api.services import Services

__all__ = ["Services", "get_application"]
