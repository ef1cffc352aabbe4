"""HTTP routes of a subscription's events: list, read, redeliver (RUNTIME.md, "Subscriptions" and
"Delivery"), and the rotation of its signing secret."""


from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..api.deps import EngineDep, KeyringDep
from ..api.pagination import PageDep, encode_cursor
from ..api.params import IntegrationId, SubscriptionId, TriggerId
from ..auth.caller import IntegrationCaller
from ..errors import (
    EventNotDeliverable,
    EventNotFound,
    SubscriptionNotFound,
    responses_for,
)
from ..idempotency.dependency import IDEMPOTENCY_ERRORS, IdempotencyDep, replayed_header_doc
from ..integrations.access import authorize_integration
from ..ops.redaction import remember_secrets
from . import events_store, poll_history
from .events_params import EVENT, EventId, StateFilter, event_links
from .events_render import render_attempt, render_event
from .events_schemas import EventDetail, EventEnvelope, EventList, SigningSecretRotated
from .router import ACCESS_ERRORS, ONE
from .seal_contexts import signing_context
from .service import new_signing_secret

router = APIRouter(tags=["Subscriptions"])



@router.get(
    ONE + "/events",
    operation_id="listEvents",
    response_model=EventList,
    summary="List Events",
    description=(
        "The events the subscription's polls found, newest first, a page at a time, optionally only those in one "
        "`state`. Requires the `INTEGRATION_API` scope."
    ),
    responses={**responses_for(*ACCESS_ERRORS, SubscriptionNotFound), 200: event_links("/events/0")},
)
async def list_events(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId,
    subscription_id: SubscriptionId, state: StateFilter, page: PageDep, request: Request, engine: EngineDep,
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    await poll_history.scoped_status(engine, integration_id, trigger_id, subscription_id)
    rows = await events_store.page_of_events(engine, subscription_id, state, page)
    shown = rows[: page.limit]
    more = len(rows) > page.limit
    return JSONResponse({
        "events": [render_event(r) for r in shown],
        "nextCursor": encode_cursor(shown[-1].first_seen_at, shown[-1].id) if more else None,
    })


@router.get(
    EVENT,
    operation_id="getEvent",
    response_model=EventDetail,
    summary="Get Event",
    description="One event, with its last 10 delivery attempts, newest first. Requires the `INTEGRATION_API` scope.",
    responses={**responses_for(*ACCESS_ERRORS, SubscriptionNotFound, EventNotFound), 200: event_links("/event")},
)
async def get_event(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId,
    subscription_id: SubscriptionId, event_id: EventId, request: Request, engine: EngineDep,
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    await poll_history.scoped_status(engine, integration_id, trigger_id, subscription_id)
    found = await events_store.read_event(engine, subscription_id, event_id)
    if found is None:
        raise EventNotFound()
    row, tried = found
    return JSONResponse({"event": render_event(row), "attempts": [render_attempt(a) for a in tried]})


@router.post(
    EVENT + "/redeliver",
    status_code=202,
    operation_id="redeliverEvent",
    response_model=EventEnvelope,
    summary="Redeliver Event",
    description=(
        "Queues one more delivery of the event, due now, with the same `webhook-id` and the same body, whatever its "
        "state. An event that used up the retry schedule gets exactly one more attempt; a pending one gets its next "
        "attempt now. A disabled subscription's event waits until the subscription is active again. A seeded event "
        "(never sent, so no body was kept) or one whose body retention removed gets 409 `event_not_deliverable`. "
        "Requires the `INTEGRATION_API` scope. Send an `Idempotency-Key` to retry safely."
    ),
    responses={
        **responses_for(*ACCESS_ERRORS, SubscriptionNotFound, EventNotFound, EventNotDeliverable, *IDEMPOTENCY_ERRORS),
        202: {**replayed_header_doc(202)[202], **event_links("/event")},
    },
)
async def redeliver_event(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId,
    subscription_id: SubscriptionId, event_id: EventId, idempotency: IdempotencyDep, request: Request,
    engine: EngineDep,
) -> Response:
    async def redeliver() -> JSONResponse:
        await authorize_integration(caller, integration_id, request)
        await poll_history.scoped_status(engine, integration_id, trigger_id, subscription_id)
        row, queued = await events_store.requeue(engine, subscription_id, event_id)
        if row is None:
            raise EventNotFound()
        if not queued:
            raise EventNotDeliverable()
        return JSONResponse({"event": render_event(row)}, status_code=202)

    return await idempotency.run(redeliver)


@router.post(
    ONE + "/rotate-signing-secret",
    operation_id="rotateSigningSecret",
    response_model=SigningSecretRotated,
    summary="Rotate Signing Secret",
    description=(
        "Replaces the signing secret with a new one, shown only in this answer. For 24 hours the replaced secret "
        "still signs: each delivery carries both signatures, so receivers can switch without losing one. Only the "
        "newest two secrets ever sign: a second rotation within 24 hours retires the oldest at once. Requires the "
        "`INTEGRATION_API` scope. Send an `Idempotency-Key` to retry safely: a retried rotation without one "
        "retires the secret that receivers still use."
    ),
    responses={
        **responses_for(*ACCESS_ERRORS, SubscriptionNotFound, *IDEMPOTENCY_ERRORS),
        **replayed_header_doc(200),
    },
)
async def rotate_signing_secret(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId,
    subscription_id: SubscriptionId, idempotency: IdempotencyDep, request: Request, engine: EngineDep,
    keyring: KeyringDep,
) -> Response:
    async def rotate() -> JSONResponse:
        await authorize_integration(caller, integration_id, request)
        secret = new_signing_secret()
        remember_secrets([secret])
        sealed = keyring.seal(secret, signing_context(subscription_id))
        if not await events_store.rotate_signing_secret(engine, integration_id, trigger_id, subscription_id, sealed):
            raise SubscriptionNotFound()
        # Not redacted: this answer is the one place the new secret is shown.
        return JSONResponse({"signingSecret": secret})

    return await idempotency.run(rotate)
