"""HTTP routes of polling: poll now, and the poll history of a subscription (RUNTIME.md,
"Subscriptions" and "Polling")."""

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..api.deps import EngineDep, KeyringDep, SandboxDep
from ..api.pagination import PageDep, encode_cursor
from ..api.params import IntegrationId, SubscriptionId, TriggerId
from ..auth.caller import IntegrationCaller
from ..errors import (
    FieldError,
    PollInProgress,
    ServiceUnavailable,
    SubscriptionDisabled,
    SubscriptionNotFound,
    ValidationFailed,
    responses_for,
)
from ..integrations.access import authorize_integration
from . import poll_history
from .claims import claim_one
from .poll import PollDeps, PollNotRun, poll, render_run
from .poll_schemas import PollEnvelope, PollList
from .router import ACCESS_ERRORS, ONE

router = APIRouter(tags=["Subscriptions"])

# The lease outlasts the sandbox's wall time, as the scheduler's does.
LEASE_MARGIN_S = 30.0
SANDBOX_RETRY_AFTER_S = 5


@router.post(
    ONE + "/poll",
    operation_id="pollSubscription",
    response_model=PollEnvelope,
    summary="Poll Subscription Now",
    description=(
        "Runs one poll now, exactly as the scheduler would, and answers its record. It counts like a scheduled "
        "poll (failures, `lastPollTime`, the next due time) and does not change the status: a paused subscription "
        "can be polled now. 409 when a poll of it is already running or it is disabled. Requires the "
        "`INTEGRATION_API` scope."
    ),
    responses=responses_for(
        *ACCESS_ERRORS, SubscriptionNotFound, PollInProgress, SubscriptionDisabled, ServiceUnavailable
    ),
)
async def poll_subscription(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId,
    subscription_id: SubscriptionId, request: Request, engine: EngineDep, sandbox: SandboxDep, keyring: KeyringDep,
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    # The scope first: a claim would lease a subscription of another trigger for nothing.
    if await poll_history.scoped_status(engine, integration_id, trigger_id, subscription_id) == "disabled":
        raise SubscriptionDisabled()
    lease_s = request.app.state.settings.polling_timeout_seconds + LEASE_MARGIN_S
    async with engine.begin() as conn:
        claim = await claim_one(conn, subscription_id, lease_s)
    if claim is None:
        # Deleted or disabled since the check above, or leased by another poll.
        if await poll_history.scoped_status(engine, integration_id, trigger_id, subscription_id) == "disabled":
            raise SubscriptionDisabled()
        raise PollInProgress()
    try:
        # The API's metrics count it with the scheduler's polls, when the app keeps them.
        observer = getattr(request.app.state, "poll_metrics", None)
        run = await poll(PollDeps(engine, sandbox, keyring, observer=observer), claim)
    except PollNotRun:
        raise ServiceUnavailable(
            "The polling code sandbox is busy or unavailable; nothing ran. Retry shortly.",
            retry_after=SANDBOX_RETRY_AFTER_S,
        ) from None
    if run is None:  # deleted, or its trigger was, while it ran
        raise SubscriptionNotFound()
    return JSONResponse({"poll": run})


@router.get(
    ONE + "/polls",
    operation_id="listPolls",
    response_model=PollList,
    summary="List Polls",
    description=(
        "The subscription's poll runs of the last 7 days, newest first, a page at a time. Requires the "
        "`INTEGRATION_API` scope."
    ),
    responses=responses_for(*ACCESS_ERRORS, SubscriptionNotFound),
)
async def list_polls(
    caller: IntegrationCaller, integration_id: IntegrationId, trigger_id: TriggerId,
    subscription_id: SubscriptionId, page: PageDep, request: Request, engine: EngineDep,
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    await poll_history.scoped_status(engine, integration_id, trigger_id, subscription_id)
    before_id = None
    if page.after is not None:
        try:
            before_id = uuid.UUID(page.after.id)
        except ValueError:
            raise ValidationFailed.of([FieldError(field="cursor", message="is not a cursor returned by this list")]) from None
    rows = await poll_history.recent_runs(engine, subscription_id, page, before_id)
    shown = rows[: page.limit]
    more = len(rows) > page.limit
    return JSONResponse({
        "polls": [render_run(dict(r._mapping)) for r in shown],
        "nextCursor": encode_cursor(shown[-1].started_at, shown[-1].id) if more else None,
    })
