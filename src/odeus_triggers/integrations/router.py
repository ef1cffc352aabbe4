"""HTTP routes of integrations."""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from ..api.deps import EngineDep
from ..api.json_body import json_body, openapi_body
from ..api.params import IntegrationId
from ..auth.caller import IntegrationCaller, ReaderCaller
from ..errors import (
    InsufficientScope,
    IntegrationForbidden,
    IntegrationNotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    responses_for,
)
from ..idempotency.dependency import IDEMPOTENCY_ERRORS, IdempotencyDep, replayed_header_doc
from . import service
from .schemas import (
    INTEGRATION_EXAMPLE,
    IntegrationDetailEnvelope,
    IntegrationEnvelope,
    IntegrationIn,
    IntegrationList,
)

router = APIRouter(tags=["Integrations"])

IntegrationBody = Annotated[IntegrationIn, Depends(json_body(IntegrationIn))]


# Registered before `/integrations/v1/{integrationId}`, which would otherwise take "get" as an id.
@router.get(
    "/integrations/v1/get",
    response_model=IntegrationList,
    summary="List Integrations",
    description=(
        "Lists the integrations of the API key's workspace, oldest first. Accepts a key with the "
        "`INTEGRATION_API` or the `ASSISTANT_API` scope."
    ),
    responses=responses_for(Unauthorized, InsufficientScope),
)
async def list_integrations(caller: ReaderCaller, engine: EngineDep) -> JSONResponse:
    return JSONResponse({"integrations": await service.list_integrations(engine, caller.workspace_id)})


@router.post(
    "/integrations/v1/create",
    status_code=201,
    response_model=IntegrationEnvelope,
    summary="Create Integration",
    description=(
        "Creates an integration in the API key's workspace: a container for triggers. The name is "
        "trimmed, normalized to NFC and at most 40 characters, with a visible character and no control "
        "or invisible formatting character; the description at most 90. Requires the "
        "`INTEGRATION_API` scope. Send an `Idempotency-Key` to retry safely."
    ),
    responses={
        **responses_for(
            ValidationFailed, Unauthorized, InsufficientScope, PayloadTooLarge, UnsupportedMediaType,
            *IDEMPOTENCY_ERRORS,
        ),
        **replayed_header_doc(201),
    },
    openapi_extra=openapi_body(IntegrationIn, INTEGRATION_EXAMPLE),
)
async def create_integration(
    caller: IntegrationCaller, body: IntegrationBody, idempotency: IdempotencyDep, engine: EngineDep
) -> Response:
    async def create() -> JSONResponse:
        created = await service.create_integration(engine, caller.workspace_id, body.name, body.description)
        return JSONResponse({"integration": created}, status_code=201)

    return await idempotency.run(create)


@router.get(
    "/integrations/v1/{integrationId}",
    response_model=IntegrationDetailEnvelope,
    summary="Get Integration",
    description=(
        "Returns an integration of the API key's workspace with a summary of each of its triggers, "
        "oldest first. Requires the `INTEGRATION_API` scope."
    ),
    responses=responses_for(
        ValidationFailed, Unauthorized, InsufficientScope, IntegrationForbidden, IntegrationNotFound
    ),
)
async def get_integration(caller: IntegrationCaller, integration_id: IntegrationId, engine: EngineDep) -> JSONResponse:
    integration = await service.read_integration(engine, integration_id, caller.workspace_id)
    return JSONResponse({"integration": integration})
