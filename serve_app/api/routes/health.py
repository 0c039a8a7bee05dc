"""GET /healthz (the process answers) and GET /readyz (the model deployments are up)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serve_app.api.deps import ServicesDep
from serve_app.api.errors import envelope
from serve_app.api.schemas import Envelope, Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Envelope[Health])
async def healthz(services: ServicesDep) -> Envelope[Health]:
    return Envelope(message="ok", data=Health(version=services.settings.VERSION))


@router.get("/readyz", response_model=Envelope[Health], responses={503: {"description": "not ready"}})
async def readyz(services: ServicesDep) -> Envelope[Health] | JSONResponse:
    components = await services.readiness()
    if all(components.values()):
        return Envelope(message="ready", data=Health(version=services.settings.VERSION, components=components))
    waiting = ", ".join(name for name, ok in components.items() if not ok)
    return envelope(503, "not_ready", f"not ready: waiting for {waiting}", components)
