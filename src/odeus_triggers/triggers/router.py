"""HTTP routes of triggers."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..auth.caller import IntegrationCaller
from ..body import json_body, openapi_body
from ..deps import EngineDep
from ..errors import (
    IntegrationForbidden,
    IntegrationNotFound,
    InsufficientScope,
    PayloadTooLarge,
    TriggerNameConflict,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    responses_for,
)
from ..integrations.access import IntegrationId, authorize_integration
from . import service
from .examples import SEED_TRIGGER
from .rules import cross_field_errors
from .schemas import TriggerEnvelope, TriggerIn

router = APIRouter(tags=["Triggers"])

TriggerBody = Annotated[TriggerIn, Depends(json_body(TriggerIn, cross_field_errors))]

WRITE_ERRORS = (
    ValidationFailed,
    Unauthorized,
    InsufficientScope,
    IntegrationForbidden,
    IntegrationNotFound,
    TriggerNameConflict,
    PayloadTooLarge,
    UnsupportedMediaType,
)


@router.post(
    "/integrations/v1/{integrationId}/triggers/create",
    status_code=201,
    response_model=TriggerEnvelope,
    summary="Create Trigger",
    description=(
        "Adds a trigger to an integration: a named event monitor with input fields and JavaScript "
        "polling code, which can start workflows or agent conversations. Requires the "
        "`INTEGRATION_API` scope. The trigger's slug is generated from its name and is unique in "
        "the integration; names are unique in the integration, ignoring case."
    ),
    responses=responses_for(*WRITE_ERRORS),
    openapi_extra=openapi_body(TriggerIn, SEED_TRIGGER),
)
async def create_trigger(
    caller: IntegrationCaller,
    integration_id: IntegrationId,
    body: TriggerBody,
    request: Request,
    engine: EngineDep,
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    return JSONResponse(await service.create_trigger(engine, integration_id, body), status_code=201)
