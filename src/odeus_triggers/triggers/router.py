"""HTTP routes of triggers."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..api.deps import EngineDep
from ..api.json_body import openapi_body
from ..api.pagination import PageDep
from ..api.params import IntegrationId, TriggerId
from ..auth.caller import IntegrationCaller
from ..errors import (
    InsufficientScope,
    IntegrationForbidden,
    IntegrationNotFound,
    PayloadTooLarge,
    TriggerNameConflict,
    TriggerNotFound,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    responses_for,
)
from ..idempotency.dependency import IDEMPOTENCY_ERRORS, IdempotencyDep, replayed_header_doc
from ..integrations.access import authorize_integration
from . import polling_docs, reads, service
from .body import checked_trigger_body
from .examples import SEED_TRIGGER
from .schemas import TriggerDeleted, TriggerEnvelope, TriggerIn, TriggerList

router = APIRouter(tags=["Triggers"])

# The body with its polling code compiled in the sandbox (a syntax error is one more 400 problem).
TriggerBody = Annotated[TriggerIn, Depends(checked_trigger_body)]

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
        "the integration; names are unique in the integration, ignoring case. Send an "
        "`Idempotency-Key` to retry safely.\n"
        + polling_docs.SAVE_CHECK
        + polling_docs.SANDBOX
    ),
    responses={**responses_for(*WRITE_ERRORS, *IDEMPOTENCY_ERRORS), **replayed_header_doc(201)},
    openapi_extra=openapi_body(TriggerIn, SEED_TRIGGER),
)
async def create_trigger(
    caller: IntegrationCaller,
    integration_id: IntegrationId,
    body: TriggerBody,
    idempotency: IdempotencyDep,
    request: Request,
    engine: EngineDep,
) -> Response:
    async def create() -> JSONResponse:
        await authorize_integration(caller, integration_id, request)
        created = await service.create_trigger(engine, integration_id, body)
        request.app.state.metrics.triggers_created.inc()
        return JSONResponse(created, status_code=201)

    return await idempotency.run(create)


READ_ERRORS = (ValidationFailed, Unauthorized, InsufficientScope, IntegrationForbidden, IntegrationNotFound)


@router.get(
    "/integrations/v1/{integrationId}/triggers",
    response_model=TriggerList,
    summary="List Triggers",
    description=(
        "The integration's triggers, whole (input fields and polling code included), oldest first, a "
        "page at a time: pass the answer's `nextCursor` as `?cursor=` for the next page, until it is "
        "null. Requires the `INTEGRATION_API` scope."
    ),
    responses=responses_for(*READ_ERRORS),
)
async def list_triggers(
    caller: IntegrationCaller, integration_id: IntegrationId, page: PageDep, request: Request, engine: EngineDep
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    return JSONResponse(await reads.list_triggers(engine, integration_id, page))


@router.get(
    "/integrations/v1/{integrationId}/triggers/{triggerId}",
    response_model=TriggerEnvelope,
    summary="Get Trigger",
    description=(
        "The whole configuration of a trigger, as Create Trigger and Update Trigger answer it. The "
        "`trigger` can be changed and sent back to Update Trigger as it is (its read-only fields are "
        "ignored there): a read-modify-write. Requires the `INTEGRATION_API` scope."
    ),
    responses=responses_for(*READ_ERRORS, TriggerNotFound),
)
async def get_trigger(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId, request: Request, engine: EngineDep
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    return JSONResponse(await reads.get_trigger(engine, integration_id, trigger_id))


@router.put(
    "/integrations/v1/{integrationId}/triggers/{triggerId}",
    response_model=TriggerEnvelope,
    summary="Update Trigger",
    description=(
        "Replaces the whole configuration of a trigger, with the same body as Create Trigger: "
        "fields left out return to their defaults, and the input fields are replaced. The id and "
        "the slug never change, so workflows that refer to the trigger keep working after a "
        "rename. Active subscriptions whose inputs no longer fit the new input fields become `paused_errors` "
        "with `pausedReason: \"inputs_invalid\"`; the update itself still succeeds. Requires the "
        "`INTEGRATION_API` scope.\n"
        + polling_docs.SAVE_CHECK
        + polling_docs.SANDBOX
    ),
    responses=responses_for(*WRITE_ERRORS, TriggerNotFound),
    openapi_extra=openapi_body(TriggerIn, SEED_TRIGGER),
)
async def update_trigger(
    caller: IntegrationCaller,
    integration_id: IntegrationId,
    trigger_id: TriggerId,
    body: TriggerBody,
    request: Request,
    engine: EngineDep,
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    updated = await service.update_trigger(engine, integration_id, trigger_id, body)
    await request.app.state.trigger_hooks.updated(engine, integration_id, trigger_id)
    return JSONResponse(updated)


@router.delete(
    "/integrations/v1/{integrationId}/triggers/{triggerId}",
    response_model=TriggerDeleted,
    summary="Delete Trigger",
    description=(
        "Deletes a trigger and its input fields. Its name can then be used again. Requires the "
        "`INTEGRATION_API` scope."
    ),
    responses=responses_for(*READ_ERRORS, TriggerNotFound),
)
async def delete_trigger(
    caller: IntegrationCaller,
    integration_id: IntegrationId,
    trigger_id: TriggerId,
    request: Request,
    engine: EngineDep,
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    await service.delete_trigger(engine, integration_id, trigger_id)
    return JSONResponse({"message": "Trigger deleted", "id": str(trigger_id)})
