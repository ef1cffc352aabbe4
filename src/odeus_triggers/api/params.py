"""The UUID path parameters of every router: 400 with the parameter's name when malformed."""

import uuid
from typing import Annotated

from fastapi import Depends, Path

from ..errors import FieldError, ValidationFailed

UUID_SCHEMA = {"format": "uuid"}


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        # Only the canonical 36-character form: uuid.UUID also takes braces, URNs and bare hex.
        if len(value) != 36:
            raise ValueError
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed.of([FieldError(field=field, message="must be a UUID")]) from None


# Taken as strings and parsed here, so that a malformed id is this API's 400 problem rather than
# FastAPI's generic validation error.
async def integration_id_param(
    integrationId: Annotated[str, Path(description="UUID of the integration", json_schema_extra=UUID_SCHEMA)],
) -> uuid.UUID:
    return parse_uuid(integrationId, "integrationId")


async def trigger_id_param(
    triggerId: Annotated[str, Path(description="UUID of the trigger", json_schema_extra=UUID_SCHEMA)],
) -> uuid.UUID:
    return parse_uuid(triggerId, "triggerId")


IntegrationId = Annotated[uuid.UUID, Depends(integration_id_param)]
TriggerId = Annotated[uuid.UUID, Depends(trigger_id_param)]


async def subscription_id_param(
    subscriptionId: Annotated[str, Path(description="UUID of the subscription", json_schema_extra=UUID_SCHEMA)],
) -> uuid.UUID:
    return parse_uuid(subscriptionId, "subscriptionId")


SubscriptionId = Annotated[uuid.UUID, Depends(subscription_id_param)]
