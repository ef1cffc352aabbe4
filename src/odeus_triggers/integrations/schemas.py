"""Request and response bodies of the integration routes."""

import uuid
from datetime import datetime

from pydantic import Field

from ..api.base_schemas import RequestModel, ResponseModel, TriggerType, display_name, text

INTEGRATION_EXAMPLE = {"name": "Issue tracker", "description": "Issues and projects of our tracker"}


class IntegrationIn(RequestModel):
    name: display_name(40)  # type: ignore[valid-type]
    description: text(90) | None = Field(None, description='Stored as "" when absent.')  # type: ignore[valid-type]


class IntegrationOut(ResponseModel):
    id: uuid.UUID
    name: str
    description: str
    createdAt: datetime


class IntegrationEnvelope(ResponseModel):
    integration: IntegrationOut


class IntegrationList(ResponseModel):
    integrations: list[IntegrationOut] = Field(description="The caller's workspace only, oldest first.")


class TriggerSummary(ResponseModel):
    id: uuid.UUID
    name: str
    slug: str
    description: str
    type: TriggerType


class IntegrationDetail(IntegrationOut):
    triggers: list[TriggerSummary] = Field(description="Oldest first.")


class IntegrationDetailEnvelope(ResponseModel):
    integration: IntegrationDetail
