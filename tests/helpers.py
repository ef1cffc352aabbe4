"""Assertions shared by the tests."""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from odeus_triggers.auth import admin
from odeus_triggers.auth.scopes import Scope
from odeus_triggers.integrations.service import create_integration


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == "about:blank"
    assert body["title"] and body["detail"]
    assert body["requestId"] == response.headers["x-request-id"]
    return body


def error_fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


@dataclass
class Tenant:
    """A workspace with a key and an integration, as a customer would have."""

    workspace_id: uuid.UUID
    key: str
    integration_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_tenant(app: object, scopes: list[Scope] | None = None) -> Tenant:
    engine = app.state.engine  # type: ignore[attr-defined]
    workspace_id = await admin.ensure_workspace(engine, f"ws-{uuid.uuid4().hex[:10]}")
    key = await admin.create_key(engine, workspace_id, scopes or [Scope.INTEGRATION_API])
    integration = await create_integration(engine, workspace_id, "Tracker", "Issue tracker")
    return Tenant(workspace_id, key.key, integration["id"])



def create_path(base: str, integration_id: str) -> str:
    return f"{base}/integrations/v1/{integration_id}/triggers/create"


