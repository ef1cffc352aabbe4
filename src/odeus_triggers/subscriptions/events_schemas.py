"""Response bodies of the event and signing-secret routes (RUNTIME.md, "PollRun, Event and Attempt")."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from ..api.base_schemas import ResponseModel


class EventState(StrEnum):
    SEEDED = "seeded"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventOut(ResponseModel):
    id: str = Field(description="`msg_…`: the `webhook-id` of every attempt to deliver this event, redeliveries included.")
    eventId: str = Field(description="The event's own id, as the polling code returned it (JavaScript's `String(id)`).")
    state: EventState = Field(
        description="`seeded`: found by the first poll, which delivers nothing; `pending`: waiting for its next attempt; "
        "`delivered`: a 2xx answered; `failed`: the retry schedule ran out; `cancelled`: it will not be sent."
    )
    attempts: int = Field(description="Delivery attempts so far, redeliveries included.")
    lastStatus: int | None = Field(description="The HTTP status of the last attempt; null before any, or when it got none.")
    lastError: str | None = Field(description="Why the last attempt failed; null when it succeeded or none was made.")
    firstSeenAt: datetime = Field(description="When a poll first found it; events of one poll share it.")
    deliveredAt: datetime | None = Field(
        description="The last successful delivery. A redelivery keeps it until the new attempt succeeds."
    )
    data: dict[str, Any] | None = Field(
        description="The event as the webhook receives it (`data` of the body). Null for a seeded event, and once "
        "retention has removed the body."
    )


class AttemptOut(ResponseModel):
    at: datetime
    status: int | None = Field(description="The webhook's HTTP status (a redirect's 302 included); null when none came.")
    durationMs: float
    error: str | None = Field(description="Why it failed (`timeout`, `address_not_allowed`, …); null on success.")


class EventList(ResponseModel):
    events: list[EventOut] = Field(description="Newest first (`firstSeenAt`, then `id`, descending).")
    nextCursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last page.")


class EventDetail(ResponseModel):
    event: EventOut
    attempts: list[AttemptOut] = Field(description="The last 10 attempts, newest first.")


class EventEnvelope(ResponseModel):
    event: EventOut


class SigningSecretRotated(ResponseModel):
    signingSecret: str = Field(
        description="`whsec_…`: the new secret, shown only here. For 24 hours deliveries carry a signature with it "
        "and one with the secret it replaced."
    )
