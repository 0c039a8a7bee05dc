"""``Annotated[..., Depends()]`` aliases the routers declare their needs with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from configs.settings import Settings
from serve_app.api.csrf import STATE_KEY
from serve_app.api.services import InferenceService, Services
from serve_app.jobs import JobService, Storage


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


def get_job_service(services: ServicesDep) -> JobService:
    return services.jobs


def get_storage(services: ServicesDep) -> Storage:
    return services.storage


def get_inference(services: ServicesDep) -> InferenceService:
    return services.inference


def get_csrf_expected(request: Request) -> str | None:
    """The token a multipart body must carry in its ``csrf_token`` field (set by CSRFMiddleware)."""
    value = getattr(request.state, STATE_KEY, None)
    return value if isinstance(value, str) else None


def get_owner(request: Request) -> str | None:
    """The caller's job owner (a hash of its API key, set by GuardMiddleware); None when auth is off."""
    value = request.scope.get("state", {}).get("owner")
    return value if isinstance(value, str) else None


def get_url_prefix(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


SettingsDep = Annotated[Settings, Depends(get_settings)]
JobServiceDep = Annotated[JobService, Depends(get_job_service)]
StorageDep = Annotated[Storage, Depends(get_storage)]
InferenceDep = Annotated[InferenceService, Depends(get_inference)]
CSRFExpectedDep = Annotated[str | None, Depends(get_csrf_expected)]
PrefixDep = Annotated[str, Depends(get_url_prefix)]
OwnerDep = Annotated[str | None, Depends(get_owner)]
