"""HTTP routes of subscriptions: `/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions`."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..api.deps import EngineDep, KeyringDep
from ..api.json_body import json_body, openapi_body
from ..api.pagination import PageDep
from ..api.params import IntegrationId, SubscriptionId, TriggerId
from ..auth.caller import IntegrationCaller
from ..errors import (
    InsufficientScope,
    IntegrationForbidden,
    IntegrationNotFound,
    PayloadTooLarge,
    SubscriptionNotFound,
    TriggerNotFound,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    responses_for,
)
from ..idempotency.dependency import IDEMPOTENCY_ERRORS, IdempotencyDep, replayed_header_doc
from ..integrations.access import authorize_integration
from ..integrations.secret_rules import secret_values_of
from ..ops.redaction import remember_secrets
from . import service
from .schemas import (
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionDeleted,
    SubscriptionEnvelope,
    SubscriptionList,
    SubscriptionPatch,
)

router = APIRouter(tags=["Subscriptions"])

BASE = "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions"
ONE = BASE + "/{subscriptionId}"
CREATE_EXAMPLE = {
    "inputs": {"projectId": "proj_123", "priorityFilter": "high"},
    "secrets": {"API_TOKEN": "tok_example"},
    "webhookUrl": "https://workflows.example.com/hooks/abc",
    "intervalSeconds": 300,
    "backfillSince": None,
}
PATCH_EXAMPLE = {"status": "paused"}
ACCESS_ERRORS = (ValidationFailed, Unauthorized, InsufficientScope, IntegrationForbidden, IntegrationNotFound)
BODY_ERRORS = (PayloadTooLarge, UnsupportedMediaType)

CreateBody = Annotated[SubscriptionCreate, Depends(json_body(SubscriptionCreate))]
PatchBody = Annotated[SubscriptionPatch, Depends(json_body(SubscriptionPatch))]


def rules_of(request: Request) -> service.Rules:
    settings = request.app.state.settings
    return service.Rules(settings.min_interval_seconds, settings.delivery_allow_private_network)


@router.post(
    BASE,
    status_code=201,
    operation_id="createSubscription",
    response_model=SubscriptionCreated,
    summary="Create Subscription",
    description=(
        "Subscribes to a trigger: its polling code will run every `intervalSeconds` with these `inputs` and "
        "`secrets`, and each new event is POSTed, signed, to `webhookUrl`. The first poll records what exists "
        "and delivers nothing, unless `backfillSince` is set. The answer holds the signing secret, shown only "
        "here. A WEBHOOK trigger (no polling code) cannot be subscribed to. Requires the `INTEGRATION_API` "
        "scope. Send an `Idempotency-Key` to retry safely."
    ),
    responses={
        **responses_for(*ACCESS_ERRORS, TriggerNotFound, *BODY_ERRORS, *IDEMPOTENCY_ERRORS),
        **replayed_header_doc(201),
    },
    openapi_extra=openapi_body(SubscriptionCreate, CREATE_EXAMPLE),
)
async def create_subscription(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId, body: CreateBody,
    idempotency: IdempotencyDep, request: Request, engine: EngineDep, keyring: KeyringDep,
) -> Response:
    remember_secrets(secret_values_of(body.secrets))

    async def create() -> JSONResponse:
        await authorize_integration(caller, integration_id, request)
        created = await service.create_subscription(
            engine, keyring, rules_of(request), caller.workspace_id, integration_id, trigger_id, body
        )
        remember_secrets([created["signingSecret"]])
        # Not redacted: this answer is the one place the signing secret is shown.
        return JSONResponse(created, status_code=201)

    return await idempotency.run(create)


@router.get(
    BASE,
    operation_id="listSubscriptions",
    response_model=SubscriptionList,
    summary="List Subscriptions",
    description="A trigger's subscriptions, oldest first, a page at a time. Requires the `INTEGRATION_API` scope.",
    responses=responses_for(*ACCESS_ERRORS, TriggerNotFound),
)
async def list_subscriptions(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId, page: PageDep,
    request: Request, engine: EngineDep,
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    return JSONResponse(await service.list_subscriptions(engine, integration_id, trigger_id, page))


@router.get(
    ONE,
    operation_id="getSubscription",
    response_model=SubscriptionEnvelope,
    summary="Get Subscription",
    description="One subscription, with its polling state. Requires the `INTEGRATION_API` scope.",
    responses=responses_for(*ACCESS_ERRORS, SubscriptionNotFound),
)
async def get_subscription(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId,
    subscription_id: SubscriptionId, request: Request, engine: EngineDep,
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    return JSONResponse(await service.get_subscription(engine, integration_id, trigger_id, subscription_id))


@router.patch(
    ONE,
    operation_id="updateSubscription",
    response_model=SubscriptionEnvelope,
    summary="Update Subscription",
    description=(
        "Changes any of `inputs` (replaces them all), `secrets` (merges), `webhookUrl`, `intervalSeconds` and "
        "`status` (`active` resumes, `paused` pauses). A subscription as read can be sent back as it is: "
        "read-only fields are ignored, and a PASSWORD input sent back as `{\"set\": true}` keeps its value. "
        "Resuming checks the inputs against the trigger's current fields. Requires the `INTEGRATION_API` scope."
    ),
    responses=responses_for(*ACCESS_ERRORS, TriggerNotFound, SubscriptionNotFound, *BODY_ERRORS),
    openapi_extra=openapi_body(SubscriptionPatch, PATCH_EXAMPLE),
)
async def update_subscription(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId,
    subscription_id: SubscriptionId, body: PatchBody, request: Request, engine: EngineDep, keyring: KeyringDep,
) -> JSONResponse:
    remember_secrets(secret_values_of(body.secrets) if isinstance(body.secrets, dict) else [])
    await authorize_integration(caller, integration_id, request)
    updated = await service.update_subscription(
        engine, keyring, rules_of(request), integration_id, trigger_id, subscription_id, body
    )
    return JSONResponse(updated)


@router.delete(
    ONE,
    operation_id="deleteSubscription",
    response_model=SubscriptionDeleted,
    summary="Delete Subscription",
    description=(
        "Stops polling and deletes the subscription with its history; its undelivered events are cancelled. "
        "Requires the `INTEGRATION_API` scope."
    ),
    responses=responses_for(*ACCESS_ERRORS, SubscriptionNotFound),
)
async def delete_subscription(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId,
    subscription_id: SubscriptionId, request: Request, engine: EngineDep,
) -> dict[str, Any]:
    await authorize_integration(caller, integration_id, request)
    await service.delete_subscription(engine, integration_id, trigger_id, subscription_id)
    return {"message": "Subscription deleted", "id": str(subscription_id)}
