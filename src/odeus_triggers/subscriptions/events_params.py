"""The parameters of the event routes, and the OpenAPI links that fill `{eventId}`."""

import re
from typing import Annotated, Any

from fastapi import Depends, Path, Query

from ..errors import FieldError, ValidationFailed
from .events_schemas import EventState
from .router import ONE

EVENT = ONE + "/events/{eventId}"
# `msg_` and 32 hex digits today; the pattern leaves room for another form within the column's 40.
EVENT_ID_PATTERN = r"^msg_[A-Za-z0-9_-]{1,36}$"
STATES = [s.value for s in EventState]


async def event_id_param(
    eventId: Annotated[str, Path(description="The event's `id` (`msg_…`)", json_schema_extra={"pattern": EVENT_ID_PATTERN})],
) -> str:
    if not re.fullmatch(EVENT_ID_PATTERN, eventId):
        raise ValidationFailed.of([FieldError(field="eventId", message="must be an event's `msg_…` id")])
    return eventId


# Taken as a string so that a wrong value is named with the allowed ones, in this API's 400.
async def state_param(
    state: Annotated[
        str, Query(description="Only the events in this state.", json_schema_extra={"enum": STATES})
    ] = None,  # type: ignore[assignment]
) -> str | None:
    if state is not None and state not in STATES:
        raise ValidationFailed.of([FieldError(field="state", message="must be one of " + ", ".join(STATES))])
    return state


EventId = Annotated[str, Depends(event_id_param)]
StateFilter = Annotated[str | None, Depends(state_param)]


def event_links(pointer: str) -> dict[str, Any]:
    """OpenAPI links from an answer that holds an Event at `pointer` to the routes of that event.

    Explicit, because the Event's `eventId` is the code's own id while the path's `{eventId}` is
    its `id`: a client generator or a fuzzer that guessed by name would send the wrong one."""
    same = {name: f"$request.path.{name}" for name in ("integrationId", "triggerId", "subscriptionId")}
    parameters = {**same, "eventId": f"$response.body#{pointer}/id"}
    return {"links": {
        "GetEvent": {"operationId": "getEvent", "parameters": parameters, "description": "The event and its attempts."},
        "RedeliverEvent": {"operationId": "redeliverEvent", "parameters": parameters, "description": "Send it again."},
    }}
