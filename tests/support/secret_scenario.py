"""One walk through every route that takes a secret, with polling code that leaks them all, for the
redaction and the at-rest tests. The values are synthetic and unique per walk; a test must never
print one (an assertion message would put it in the test output)."""

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from .helpers import Tenant, create_path, run_path

# A literal public address: no DNS is needed to accept it as a webhook.
WEBHOOK = "https://93.184.216.34/hooks/redaction"

LEAKING_CODE = """
console.log(secrets.API_TOKEN);
console.log("shared=" + secrets.SHARED);
throw new Error("leaked " + secrets.API_TOKEN + " " + inputs.password + " " + secrets.SHARED);
"""
# The secret as a value and as a key of the event; `fromRequest` shows which SHARED the code saw.
RETURNING_CODE = """
return [{id: 1, token: secrets.API_TOKEN, [secrets.API_TOKEN]: inputs.password,
         fromRequest: secrets.SHARED.startsWith("synthetic-request")}];
"""
PASSWORD_FIELD = [{"label": "Password", "type": "PASSWORD"}]


def _synthetic(kind: str) -> str:
    return f"synthetic-{kind}-{uuid.uuid4().hex[:12]}"


@dataclass
class Walk:
    integration_token: str = field(default_factory=lambda: _synthetic("integration-secret"))
    shadowed: str = field(default_factory=lambda: _synthetic("shadowed-secret"))
    request_token: str = field(default_factory=lambda: _synthetic("request-secret"))
    run_password: str = field(default_factory=lambda: _synthetic("run-password"))
    subscription_token: str = field(default_factory=lambda: _synthetic("subscription-secret"))
    subscription_password: str = field(default_factory=lambda: _synthetic("subscription-password"))
    patched_token: str = field(default_factory=lambda: _synthetic("patched-secret"))
    patched_password: str = field(default_factory=lambda: _synthetic("patched-password"))
    refused: str = field(default_factory=lambda: _synthetic("refused-secret"))
    signing_secret: str = ""
    subscription_id: str = ""
    leaking_result: dict[str, Any] = field(default_factory=dict)
    returning_result: dict[str, Any] = field(default_factory=dict)
    # Every answer but the 201 of the create, which is meant to show the signing secret once.
    texts: list[str] = field(default_factory=list)
    created_text: str = ""

    def submitted(self) -> dict[str, str]:
        """Every secret value the walk sent, by name (the signing secret is the service's own)."""
        names = ("integration_token", "shadowed", "request_token", "run_password", "subscription_token",
                 "subscription_password", "patched_token", "patched_password", "refused")
        return {name: getattr(self, name) for name in names}

    def all_values(self) -> dict[str, str]:
        return {**self.submitted(), "signing_secret": self.signing_secret}


def leaks(values: dict[str, str], text: str) -> list[str]:
    """The names of the values found in `text`: what an assertion may show, where the values may not
    (pytest's assertion rewriting would print a part of `value not in text`)."""
    return [name for name, value in values.items() if value in text]


async def walk(client: httpx.AsyncClient, tenant: Tenant, **create_headers: str) -> Walk:
    w = Walk()
    base = f"/integrations/v1/{tenant.integration_id}"

    async def call(method: str, path: str, expected: int, body: Any, headers: dict[str, str] | None = None) -> Any:
        response = await client.request(method, path, json=body, headers={**tenant.auth, **(headers or {})})
        # The text may hold a secret if the service leaked one: never shown, only the status.
        assert response.status_code == expected, f"{method} {path}: {response.status_code}"
        w.texts.append(response.text)
        return response.json()

    await call("PUT", f"{base}/secrets", 200, {"secrets": {"API_TOKEN": w.integration_token, "SHARED": w.shadowed}})
    # A refused body: its problem names the field, never the value.
    await call("PUT", f"{base}/secrets", 400, {"secrets": {"not a name": w.refused, "OK": ["x"]}})

    leaking = await call("POST", create_path("", tenant.integration_id), 201,
                         {"name": f"Leaky {uuid.uuid4().hex[:8]}", "pollingCode": LEAKING_CODE, "inputFields": PASSWORD_FIELD})
    returning = await call("POST", create_path("", tenant.integration_id), 201,
                           {"name": f"Echo {uuid.uuid4().hex[:8]}", "pollingCode": RETURNING_CODE,
                            "inputFields": PASSWORD_FIELD})
    leaking_id = leaking["trigger"]["id"]

    subscriptions = f"{base}/triggers/{leaking_id}/subscriptions"
    await call("POST", subscriptions, 400, {
        "inputs": {"password": w.refused}, "secrets": {"API_TOKEN": w.refused, "bad name": w.refused},
        "webhookUrl": WEBHOOK, "intervalSeconds": 0,
    })
    response = await client.post(subscriptions, json={
        "inputs": {"password": w.subscription_password}, "secrets": {"API_TOKEN": w.subscription_token},
        "webhookUrl": WEBHOOK, "intervalSeconds": 60,
    }, headers={**tenant.auth, **create_headers})
    assert response.status_code == 201, f"create subscription: {response.status_code}"
    w.created_text = response.text
    created = response.json()
    w.signing_secret, w.subscription_id = created["signingSecret"], created["subscription"]["id"]
    await call("PATCH", f"{subscriptions}/{w.subscription_id}", 200,
               {"inputs": {"password": w.patched_password}, "secrets": {"EXTRA": w.patched_token}})
    await call("GET", f"{subscriptions}/{w.subscription_id}", 200, None)

    w.leaking_result = await call("POST", run_path("", tenant.integration_id, leaking_id), 200,
                                  {"inputs": {"password": w.run_password}})
    w.returning_result = await call("POST", run_path("", tenant.integration_id, returning["trigger"]["id"]), 200,
                                    {"inputs": {"password": w.run_password}, "secrets": {"SHARED": w.request_token}})
    return w
