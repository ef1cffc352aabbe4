"""Request and response bodies of the subscription routes (RUNTIME.md, "Subscriptions")."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field

from ..api.base_schemas import RequestModel, ResponseModel, without_null_defaults
from ..integrations.secret_rules import MAX_SECRETS

READ_ONLY = "Read-only: accepted and ignored, so that a subscription read from the API can be sent back."
SECRETS_DOC = (
    f"The connected account's secrets, merged over the integration's by name when the code runs. At most "
    f"{MAX_SECRETS}; names as `secrets.NAME` in the code; values at most 8 KiB. Never returned."
)


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    PAUSED_ERRORS = "paused_errors"
    DISABLED = "disabled"


class SubscriptionCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra=without_null_defaults)

    inputs: dict[str, Any] = Field(
        description="Values of the trigger's input fields, keyed by field slug; checked as a test run checks them. "
        "PASSWORD values are stored encrypted and read back as `{\"set\": true}`."
    )
    webhookUrl: str = Field(
        description="Where each new event is POSTed: https or http, at most 2,048 characters, and a public address "
        "unless the operator allows private networks."
    )
    secrets: dict[str, str] | None = Field(None, description=SECRETS_DOC)
    intervalSeconds: int | None = Field(
        None, description="Seconds between polls: default 300, at most 86,400; the minimum is set by the operator "
        "(60 by default)."
    )
    backfillSince: str | None = Field(
        None, description="ISO-8601 date-time: the first poll gets it as `lastPollTime` and delivers what it finds, "
        "instead of seeding.",
    )


class SubscriptionPatch(RequestModel):
    """Any subset of the changeable fields; a Subscription as read is accepted as it is."""

    model_config = ConfigDict(json_schema_extra=without_null_defaults)

    inputs: dict[str, Any] | None = Field(
        None, description="Replaces all the inputs. A PASSWORD field sent back as `{\"set\": true}` keeps its value."
    )
    secrets: dict[str, str | None] | list[dict[str, Any]] | None = Field(
        None, description="An object merges (a string sets, null deletes, an absent name is unchanged). The list "
        "that a read returns is read-only and ignored.",
    )
    webhookUrl: str | None = None
    intervalSeconds: int | None = None
    status: SubscriptionStatus | None = Field(
        None, description="`active` resumes and `paused` pauses; the current status is accepted and ignored.",
    )
    id: str | None = Field(None, description=READ_ONLY)
    integrationId: str | None = Field(None, description=READ_ONLY)
    triggerId: str | None = Field(None, description=READ_ONLY)
    lastPollTime: str | None = Field(None, description=READ_ONLY)
    nextPollAt: str | None = Field(None, description=READ_ONLY)
    lastPolledAt: str | None = Field(None, description=READ_ONLY)
    lastSucceededAt: str | None = Field(None, description=READ_ONLY)
    consecutiveFailures: int | None = Field(None, description=READ_ONLY)
    lastError: dict[str, Any] | None = Field(None, description=READ_ONLY)
    pausedReason: str | None = Field(None, description=READ_ONLY)
    createdAt: str | None = Field(None, description=READ_ONLY)
    updatedAt: str | None = Field(None, description=READ_ONLY)


class SecretNameOut(ResponseModel):
    name: str
    updatedAt: datetime


class PollErrorOut(ResponseModel):
    code: str
    message: str = Field(description="Secret values in it are replaced with `[redacted]`.")
    line: int | None = Field(None, description="1-based line in the polling code, when known.")


class SubscriptionOut(ResponseModel):
    id: uuid.UUID
    integrationId: uuid.UUID
    triggerId: uuid.UUID
    status: SubscriptionStatus
    inputs: dict[str, Any] = Field(description="PASSWORD values show as `{\"set\": true}`.")
    secrets: list[SecretNameOut] = Field(description="Names only, never values.")
    webhookUrl: str
    intervalSeconds: int
    lastPollTime: datetime | None = Field(description="What the next poll's code will see as `lastPollTime`.")
    nextPollAt: datetime | None
    lastPolledAt: datetime | None
    lastSucceededAt: datetime | None
    consecutiveFailures: int
    lastError: PollErrorOut | None
    pausedReason: str | None = Field(description="Why the service paused it (`inputs_invalid`, …); null otherwise.")
    createdAt: datetime
    updatedAt: datetime


class SubscriptionEnvelope(ResponseModel):
    subscription: SubscriptionOut


class SubscriptionCreated(ResponseModel):
    subscription: SubscriptionOut
    signingSecret: str = Field(
        description="`whsec_…`: verifies the webhook signatures. Shown only here; store it now."
    )


class SubscriptionList(ResponseModel):
    subscriptions: list[SubscriptionOut]
    nextCursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last page.")


class SubscriptionDeleted(ResponseModel):
    message: Literal["Subscription deleted"]
    id: uuid.UUID
