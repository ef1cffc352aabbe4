"""HTTP routes of integration secrets: merge and list. No response carries a value."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..api.deps import EngineDep, KeyringDep
from ..api.json_body import json_body, openapi_body
from ..api.params import IntegrationId
from ..auth.caller import IntegrationCaller
from ..errors import (
    FieldError,
    InsufficientScope,
    IntegrationForbidden,
    IntegrationNotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    responses_for,
)
from ..ops.redaction import remember_secrets
from .access import authorize_integration
from .secret_rules import MAX_SECRETS, MAX_VALUE_BYTES, secret_map_errors
from .secrets import list_secrets, merge_secrets
from .secrets_schemas import SECRETS_EXAMPLE, IntegrationSecretsIn, SecretList

router = APIRouter(tags=["Integration secrets"])


def _secrets_rules(body: Any) -> list[FieldError]:
    # Also called with the raw JSON when the model failed, so `secrets` may be absent or not an object.
    secrets = body.get("secrets") if isinstance(body, dict) else None
    return secret_map_errors(secrets) if isinstance(secrets, dict) else []


SecretsBody = Annotated[IntegrationSecretsIn, Depends(json_body(IntegrationSecretsIn, _secrets_rules))]

READ_ERRORS = (ValidationFailed, Unauthorized, InsufficientScope, IntegrationForbidden, IntegrationNotFound)


@router.put(
    "/integrations/v1/{integrationId}/secrets",
    operation_id="updateIntegrationSecrets",
    response_model=SecretList,
    summary="Update Integration Secrets",
    description=(
        "Merges secrets into the integration's: a string sets a value (inserting or replacing it), "
        "null deletes it, and a name left out is unchanged. The polling code reads them as "
        "`secrets.NAME`. A name is a letter or `_`, then up to 63 letters, digits or `_`; a value is "
        f"a non-empty string of at most {MAX_VALUE_BYTES:,} bytes of UTF-8; an integration holds at "
        f"most {MAX_SECRETS} secrets once merged. Every problem is named in one 400, and then nothing "
        "is written. Values are encrypted at rest and never returned: the answer lists the names. "
        "Requires the `INTEGRATION_API` scope."
    ),
    responses=responses_for(*READ_ERRORS, PayloadTooLarge, UnsupportedMediaType),
    openapi_extra=openapi_body(IntegrationSecretsIn, SECRETS_EXAMPLE),
)
async def update_integration_secrets(
    caller: IntegrationCaller,
    integration_id: IntegrationId,
    body: SecretsBody,
    request: Request,
    engine: EngineDep,
    keyring: KeyringDep,
) -> JSONResponse:
    remember_secrets(v for v in body.secrets.values() if v is not None)
    await authorize_integration(caller, integration_id, request)
    return JSONResponse({"secrets": await merge_secrets(engine, keyring, integration_id, body.secrets)})


@router.get(
    "/integrations/v1/{integrationId}/secrets",
    operation_id="listIntegrationSecrets",
    response_model=SecretList,
    summary="List Integration Secrets",
    description=(
        "Lists the names of the integration's secrets, sorted by name, with when each was last set. "
        "Values are never returned. Requires the `INTEGRATION_API` scope."
    ),
    responses=responses_for(*READ_ERRORS),
)
async def list_integration_secrets(
    caller: IntegrationCaller, integration_id: IntegrationId, request: Request, engine: EngineDep
) -> JSONResponse:
    await authorize_integration(caller, integration_id, request)
    return JSONResponse({"secrets": await list_secrets(engine, integration_id)})
