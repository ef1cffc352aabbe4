"""Request and response bodies of the integration secrets routes. No body here holds a value
that goes back to the client: responses name secrets, never their values."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from ..api.base_schemas import RequestModel, ResponseModel
from .secret_rules import MAX_SECRETS, MAX_VALUE_BYTES, NAME_PATTERN

SECRETS_EXAMPLE = {"secrets": {"API_TOKEN": "tok_live_123", "OLD_TOKEN": None}}

# Any object passes the model: the names and values are checked by `secret_map_errors`, so that a
# bad entry gets one message naming the secret rather than one from Pydantic and one from the rules.
# A value's limit is in UTF-8 bytes, which JSON Schema cannot count: `maxLength` (characters) is the
# part of it that it can say, since a longer string always has more bytes. No `maxProperties`: the
# limit is on the merged set, and a body may also delete (null) names that are not stored.
SecretMap = Annotated[
    dict[str, Any],
    WithJsonSchema({
        "type": "object",
        "propertyNames": {"pattern": NAME_PATTERN},
        "additionalProperties": {
            "anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_VALUE_BYTES}, {"type": "null"}]
        },
        "description": (
            "Merged into the stored secrets: a string sets the value (inserting or replacing it), null "
            "deletes it (a name that is not stored is fine), and a name left out is unchanged. A value is "
            f"at most {MAX_VALUE_BYTES:,} bytes of UTF-8; the integration holds at most {MAX_SECRETS} "
            "secrets once merged."
        ),
    }),
]


class IntegrationSecretsIn(RequestModel):
    secrets: SecretMap


class SecretSummary(ResponseModel):
    name: str
    updatedAt: datetime


class SecretList(ResponseModel):
    secrets: list[SecretSummary] = Field(description="Sorted by name. Values are never returned.")
