"""Response bodies of the poll routes (RUNTIME.md, "PollRun, Event and Attempt")."""

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from ..api.base_schemas import ResponseModel
from .schemas import PollErrorOut


class PollOutcome(StrEnum):
    SEEDED = "seeded"
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    INVALID_OUTPUT = "invalid_output"
    LEASE_LOST = "lease_lost"


class PollRunOut(ResponseModel):
    id: uuid.UUID
    startedAt: datetime = Field(description="By the database's clock; after an `ok` uncapped run, the next `lastPollTime`.")
    finishedAt: datetime
    outcome: PollOutcome = Field(
        description="`seeded`: the first poll, which records what exists and delivers nothing; `lease_lost`: another "
        "claim took the subscription, and nothing of this run was written."
    )
    returned: int = Field(description="Events the code returned.")
    new: int = Field(description="Events not seen before, now queued for delivery; 0 on a seeded poll.")
    capped: bool = Field(description="More new events than one poll delivers: the rest come on the next poll.")
    durationMs: float
    error: PollErrorOut | None


class PollEnvelope(ResponseModel):
    poll: PollRunOut


class PollList(ResponseModel):
    polls: list[PollRunOut] = Field(description="Newest first; runs are kept 7 days.")
    nextCursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last page.")
