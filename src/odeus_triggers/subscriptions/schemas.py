"""Request and response bodies of the subscription routes (RUNTIME.md, "Subscriptions")."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..api.base_schemas import WHITE_SPACE, RequestModel, ResponseModel, without_null_defaults
from ..egress.destinations import MAX_URL_LENGTH
from ..integrations.secret_rules import MAX_SECRETS, MAX_VALUE_BYTES, NAME_PATTERN
from ..triggers.schemas import PollTime

READ_ONLY = "Read-only: accepted and ignored, so that a subscription read from the API can be sent back."
SECRETS_DOC = (
    f"The connected account's secrets, merged over the integration's by name when the code runs. At most "
    f"{MAX_SECRETS}; names as `secrets.NAME` in the code; values at most 8 KiB. Never returned."
)
MAX_INTERVAL_S = 86_400
# The scheme is matched as `urlsplit` reads it (case-insensitively); white space and control
# characters are refused anywhere in the URL (`url_problem`). The rest (a host, no credentials, no
# fragment, a public address) is checked by the address guard, which no pattern can say.
WEBHOOK_URL_PATTERN = f"^[Hh][Tt][Tt][Pp][Ss]?://[^{WHITE_SPACE}\\x00-\\x1f\\x7f]*$"
WEBHOOK_URL_DOC = (
    f"Where each new event is POSTed: https or http, at most {MAX_URL_LENGTH:,} characters, and a public address "
    "unless the operator allows private networks."
)
INTERVAL_DOC = (
    f"Seconds between polls: default 300, at most {MAX_INTERVAL_S:,}. The schema's minimum is 1; the operator may "
    "set a higher minimum (`ODEUS_MIN_INTERVAL_SECONDS`, 60 by default), and a shorter interval then gets 400."
)
# These say in the document what the service checks (`service.py`, the address guard), and only
# there: every rule is enforced by the service, whose messages name the secret or the limit.
# A secret value's limit is in UTF-8 bytes, which JSON Schema cannot count; `maxLength` (in
# characters) is the part of it that it can say, since a longer string always has more bytes.
_SECRET_VALUE = {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_BYTES}
SecretValues = Annotated[
    dict[str, str],
    WithJsonSchema({
        "type": "object",
        "propertyNames": {"pattern": NAME_PATTERN},
        "maxProperties": MAX_SECRETS,
        "additionalProperties": _SECRET_VALUE,
    }),
]
# No `maxProperties` on a merge: the limit is on the merged set, and a body may delete (null) names
# that are not stored, so a body of more than 50 names can be right.
SecretChanges = Annotated[
    dict[str, str | None],
    WithJsonSchema({
        "type": "object",
        "propertyNames": {"pattern": NAME_PATTERN},
        "additionalProperties": {"anyOf": [_SECRET_VALUE, {"type": "null"}]},
    }),
]
WebhookUrl = Annotated[
    str, WithJsonSchema({"type": "string", "maxLength": MAX_URL_LENGTH, "pattern": WEBHOOK_URL_PATTERN})
]


def _integral(value: Any) -> Any:
    # JSON has one number type, and JSON Schema's `integer` holds 538.0; strict mode would refuse it as a float.
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_integral)]
Interval = Annotated[Integer, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_INTERVAL_S})]


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
    webhookUrl: WebhookUrl = Field(description=WEBHOOK_URL_DOC)
    secrets: SecretValues | None = Field(None, description=SECRETS_DOC)
    intervalSeconds: Interval | None = Field(None, description=INTERVAL_DOC)
    backfillSince: PollTime | None = Field(
        None, description="RFC 3339 date-time (one without an offset is taken as UTC): the first poll gets it as "
        "`lastPollTime` and delivers what it finds, instead of seeding.",
    )


class SubscriptionPatch(RequestModel):
    """Any subset of the changeable fields; a Subscription as read is accepted as it is."""

    model_config = ConfigDict(json_schema_extra=without_null_defaults)

    inputs: dict[str, Any] | None = Field(
        None, description="Replaces all the inputs. A PASSWORD field sent back as `{\"set\": true}` keeps its value."
    )
    secrets: SecretChanges | list[dict[str, Any]] | None = Field(
        None, description="An object merges (a string sets, null deletes, an absent name is unchanged). The list "
        "that a read returns is read-only and ignored.",
    )
    webhookUrl: WebhookUrl | None = Field(None, description=WEBHOOK_URL_DOC)
    intervalSeconds: Interval | None = Field(None, description=INTERVAL_DOC)
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
    consecutiveFailures: Integer | None = Field(None, description=READ_ONLY)
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
