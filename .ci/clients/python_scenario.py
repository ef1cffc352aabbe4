"""A user's scenario through the generated Python client (openapi-python-client), against a running service.

    CLIENTS_BASE=http://127.0.0.1:PORT CLIENTS_KEY=odk_… PYTHONPATH=<folder holding odeus_client> \\
        python python_scenario.py OPENAPI_JSON

Each operation is found by its method and path in the document and called as the generator named it,
so that the scenario survives a renaming of the operationIds. An operation that the generator left
out fails its step; the scenario then sends that one request as raw HTTP, so that the later steps
still run and report. Every step prints PASS, FAIL or SKIP; the exit code is 1 if any failed.

CLIENTS_REQUIRE_TRIGGER_READS=1 makes the absence of GET trigger / list triggers a failure instead of
a skip (set it once those routes are in the document).
"""

import importlib
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from odeus_client import AuthenticatedClient, models  # type: ignore[import-not-found]
from odeus_client.types import UNSET  # type: ignore[import-not-found]
from openapi_python_client.strings import PythonIdentifier

HERE = Path(__file__).resolve().parent
SEED = json.loads((HERE / "fixtures" / "seed_trigger.json").read_text())
BASE = os.environ["CLIENTS_BASE"]
KEY = os.environ["CLIENTS_KEY"]
REQUIRE_READS = os.environ.get("CLIENTS_REQUIRE_TRIGGER_READS") == "1"

INTEGRATIONS = "/integrations/v1/create"
INTEGRATION = "/integrations/v1/{integrationId}"
TRIGGER_CREATE = "/integrations/v1/{integrationId}/triggers/create"
TRIGGERS = "/integrations/v1/{integrationId}/triggers"
TRIGGER = "/integrations/v1/{integrationId}/triggers/{triggerId}"
TEST_RUN = "/integrations/v1/{integrationId}/triggers/{triggerId}/test"
SUBSCRIPTIONS = "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions"
POLL = "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions/{subscriptionId}/poll"
EVENTS = "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions/{subscriptionId}/events"

# Code that needs no network: the seed's own code fetches api.example.com, which a test run here cannot reach.
OFFLINE_CODE = 'return [{id: "evt-1", title: "Issue in " + inputs.projectId, priority: inputs.priorityFilter}];'
INPUTS = {"projectId": "proj_123", "priorityFilter": "high"}

results: list[tuple[str, str, str]] = []


def report(status: str, step: str, detail: str = "") -> None:
    results.append((status, step, detail))
    print(f"    {status:<4}  {step}" + (f": {detail}" if detail else ""), flush=True)


class Api:
    """The generated operations, by method and path of the document."""

    def __init__(self, doc: dict[str, Any], client: AuthenticatedClient) -> None:
        self.doc = doc
        self.client = client

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        return self.doc.get("paths", {}).get(path, {}).get(method.lower())

    def module(self, method: str, path: str) -> Any | None:
        op = self.operation(method, path)
        if op is None or not op.get("operationId"):
            return None
        tag = PythonIdentifier(value=(op.get("tags") or ["default"])[0], prefix="tag")
        name = PythonIdentifier(value=op["operationId"], prefix="")
        try:
            return importlib.import_module(f"odeus_client.api.{tag}.{name}")
        except ModuleNotFoundError:
            return None

    def call(self, step: str, method: str, path: str, expect: int, body: Any = None, **params: Any) -> Any:
        """Calls the generated function; checks the status; returns the parsed model.

        Without a generated function the step fails, and the request goes as raw HTTP (returning
        the JSON) so that the scenario goes on."""
        module = self.module(method, path)
        if module is None:
            why = "not in the document" if self.operation(method, path) is None else "not generated"
            report("FAIL", step, f"{method} {path} is {why}; sent as raw HTTP to go on")
            url = path
            for name, value in params.items():
                url = url.replace("{" + _camel(name) + "}", str(value))
            payload = body.to_dict() if hasattr(body, "to_dict") else body
            r = self.client.get_httpx_client().request(method, url, json=payload)
            if r.status_code != expect:
                raise StepFailed(f"raw HTTP answered {r.status_code}, not {expect}: {r.text[:300]}")
            return r.json()
        kwargs = dict(params)
        if body is not None:
            kwargs["body"] = body
        response = module.sync_detailed(client=self.client, **kwargs)
        if int(response.status_code) != expect:
            raise StepFailed(f"answered {int(response.status_code)}, not {expect}: {response.content[:300]!r}")
        if response.parsed is None:
            raise StepFailed(f"the generated client did not parse the {expect} answer")
        return response.parsed


class StepFailed(Exception):
    pass


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def model(name: str, data: dict[str, Any]) -> Any:
    """The generated model `name` built from JSON data, or the data itself when the model is missing."""
    cls = getattr(models, name, None)
    if cls is None:
        report("FAIL", f"model {name}", "not generated; the raw JSON is sent instead")
        return data
    return cls.from_dict(data)


def step(name: str, action: Callable[[], str | None]) -> bool:
    try:
        detail = action()
    except StepFailed as exc:
        report("FAIL", name, str(exc))
        return False
    except Exception as exc:  # a generated model that cannot parse the answer, an assertion
        report("FAIL", name, f"{type(exc).__name__}: {exc}")
        return False
    if not any(s == "FAIL" and n == name for s, n, _ in results):
        report("PASS", name, detail or "")
    return True


def field(obj: Any, attr: str, key: str) -> Any:
    """An attribute of a generated model, or the JSON key when the step had to fall back to raw HTTP."""
    return obj[key] if isinstance(obj, dict) else getattr(obj, attr)


def problem(step_name: str, response: Any, status: int, code: str | None = None, with_errors: bool = False) -> str:
    parsed = response.parsed
    if int(response.status_code) != status:
        raise StepFailed(f"answered {int(response.status_code)}, not {status}: {response.content[:300]!r}")
    if not isinstance(parsed, models.Problem):
        raise StepFailed(f"the {status} was parsed as {type(parsed).__name__}, not Problem")
    if parsed.status != status or (code is not None and parsed.code != code):
        raise StepFailed(f"Problem status {parsed.status}, code {parsed.code!r}")
    errors = parsed.errors
    if with_errors and (errors is UNSET or not errors):
        raise StepFailed("a validation Problem without errors")
    if not with_errors and errors not in (UNSET, None):
        raise StepFailed(f"unexpected errors: {errors}")
    fields = "" if errors in (UNSET, None) else f", errors on {[e.field for e in errors]}"
    return f"Problem code={parsed.code!r} requestId={parsed.request_id!r}{fields}"


def main() -> int:
    doc = json.loads(Path(sys.argv[1]).read_text())
    client = AuthenticatedClient(base_url=BASE, token=KEY, raise_on_unexpected_status=True,
                                 httpx_args={"trust_env": False}, timeout=httpx.Timeout(30.0))
    api = Api(doc, client)
    state: dict[str, Any] = {}

    # -- integration and trigger -----------------------------------------------------------------
    def create_integration() -> str:
        parsed = api.call("create an integration", "POST", INTEGRATIONS, 201,
                          body=model("IntegrationIn", {"name": "Clients check"}))
        integration = field(parsed, "integration", "integration")
        state["integration"] = uuid.UUID(str(field(integration, "id", "id")))
        return f"id {state['integration']}"

    if not step("create an integration", create_integration):
        return summary()
    iid = state["integration"]

    def create_trigger() -> str:
        body = model("TriggerIn", SEED)
        if not isinstance(body, dict) and body.to_dict() != SEED:
            raise StepFailed(f"TriggerIn does not carry the seed's body as it is: {body.to_dict()}")
        parsed = api.call("create a trigger with the seed's body", "POST", TRIGGER_CREATE, 201, body=body,
                          integration_id=iid)
        trigger = field(parsed, "trigger", "trigger")
        state["trigger"] = uuid.UUID(str(field(trigger, "id", "id")))
        fields_ = field(trigger, "input_fields", "inputFields")
        options = field(fields_[1], "options", "options")
        got = [(field(o, "label", "label"), field(o, "value", "value")) for o in options]
        want = [(o["label"], o["value"]) for o in SEED["inputFields"][1]["options"]]
        assert got == want, f"options {got} != {want}"
        assert field(trigger, "polling_code", "pollingCode") == SEED["pollingCode"], "pollingCode changed"
        return f"id {state['trigger']}, {len(fields_)} input fields"

    if not step("create a trigger with the seed's body", create_trigger):
        return summary()
    tid = state["trigger"]

    def read_route(method: str, path: str, what: str) -> bool:
        if api.operation(method, path) is not None:
            return True
        report("FAIL" if REQUIRE_READS else "SKIP", what, f"{method} {path} is not in the document (issue 14, item 7)")
        return False

    def get_trigger() -> str:
        parsed = api.call("get the trigger", "GET", TRIGGER, 200, integration_id=iid, trigger_id=tid)
        trigger = field(parsed, "trigger", "trigger")
        assert str(field(trigger, "id", "id")) == str(tid)
        state["read"] = trigger.to_dict() if hasattr(trigger, "to_dict") else trigger
        return f"name {field(trigger, 'name', 'name')!r}"

    if read_route("GET", TRIGGER, "get the trigger"):
        step("get the trigger", get_trigger)

    def list_triggers() -> str:
        parsed = api.call("list the triggers", "GET", TRIGGERS, 200, integration_id=iid)
        triggers = field(parsed, "triggers", "triggers")
        ids = [str(field(t, "id", "id")) for t in triggers]
        assert str(tid) in ids, f"{tid} not in {ids}"
        return f"{len(ids)} trigger(s), nextCursor {field(parsed, 'next_cursor', 'nextCursor')!r}"

    if read_route("GET", TRIGGERS, "list the triggers"):
        step("list the triggers", list_triggers)

    def update_trigger() -> str:
        # Read-modify-write when the read route exists: what GET returned goes back with one change.
        base = state.get("read") or SEED
        body = model("TriggerIn", {**base, "pollingCode": OFFLINE_CODE})
        parsed = api.call("update the trigger", "PUT", TRIGGER, 200, body=body, integration_id=iid, trigger_id=tid)
        trigger = field(parsed, "trigger", "trigger")
        assert field(trigger, "polling_code", "pollingCode") == OFFLINE_CODE
        return "the trigger as read, sent back with new polling code" if "read" in state else "seed body, new code"

    step("update the trigger", update_trigger)

    def test_run() -> str:
        parsed = api.call("test-run the trigger", "POST", TEST_RUN, 200, body=model("TestRunIn", {"inputs": INPUTS}),
                          integration_id=iid, trigger_id=tid)
        ok, events = field(parsed, "ok", "ok"), field(parsed, "events", "events")
        assert ok is True and len(events) == 1, f"ok={ok} events={events} error={field(parsed, 'error', 'error')}"
        return f"ok, {len(events)} event"

    step("test-run the trigger", test_run)

    # -- runtime ------------------------------------------------------------------------------------
    if api.operation("POST", SUBSCRIPTIONS) is None:
        report("SKIP", "subscribe, poll, list events", "the runtime's routes are not in the document")
    else:
        def subscribe() -> str:
            body = model("SubscriptionCreate", {"inputs": INPUTS, "webhookUrl": "http://127.0.0.1:9/hook",
                                                "backfillSince": "2020-01-01T00:00:00Z"})
            parsed = api.call("subscribe", "POST", SUBSCRIPTIONS, 201, body=body, integration_id=iid, trigger_id=tid)
            subscription = field(parsed, "subscription", "subscription")
            state["subscription"] = uuid.UUID(str(field(subscription, "id", "id")))
            assert field(parsed, "signing_secret", "signingSecret").startswith("whsec_")
            return f"id {state['subscription']}"

        if step("subscribe", subscribe):
            sid = state["subscription"]

            def poll() -> str:
                parsed = api.call("poll now", "POST", POLL, 200, integration_id=iid, trigger_id=tid, subscription_id=sid)
                run = field(parsed, "poll", "poll")
                outcome, new = str(field(run, "outcome", "outcome")), field(run, "new", "new")
                assert new == 1, f"outcome {outcome}, new {new}, error {field(run, 'error', 'error')}"
                return f"outcome {outcome}, {new} new event"

            def list_events() -> str:
                parsed = api.call("list events", "GET", EVENTS, 200, integration_id=iid, trigger_id=tid,
                                  subscription_id=sid)
                events = field(parsed, "events", "events")
                assert [str(field(e, "event_id", "eventId")) for e in events] == ["evt-1"], events
                return f"{len(events)} event, state {field(events[0], 'state', 'state')}"

            step("poll now", poll)
            step("list events", list_events)

    # -- errors, parsed into the generated Problem -------------------------------------------------------
    def conflict() -> str:
        module = api.module("POST", TRIGGER_CREATE)
        if module is None:
            raise StepFailed("createTrigger was not generated")
        return problem("409", module.sync_detailed(client=client, integration_id=iid, body=models.TriggerIn.from_dict(
            {**SEED, "name": SEED["name"].upper()})), 409)

    def not_found() -> str:
        # An unknown trigger when GET trigger is generated, else an unknown integration.
        get_trigger_module = api.module("GET", TRIGGER)
        if get_trigger_module is not None:
            response = get_trigger_module.sync_detailed(client=client, integration_id=iid, trigger_id=uuid.uuid4())
            return "getTrigger: " + problem("404", response, 404)
        get_integration_module = api.module("GET", INTEGRATION)
        if get_integration_module is None:
            raise StepFailed("neither getTrigger nor getIntegration was generated")
        return "getIntegration: " + problem("404", get_integration_module.sync_detailed(
            client=client, integration_id=uuid.uuid4()), 404)

    def bad_request() -> str:
        # The SELECT rule, which the server enforces whether or not the schema says it.
        module = api.module("POST", TRIGGER_CREATE)
        if module is None:
            raise StepFailed("createTrigger was not generated")
        body = models.TriggerIn.from_dict({"name": "Broken select", "inputFields": [{"label": "P", "type": "SELECT"}]})
        detail = problem("400", module.sync_detailed(client=client, integration_id=iid, body=body), 400,
                         with_errors=True)
        assert "inputFields[0].options" in detail, detail
        return detail

    step("a 409 parsed into Problem (same name, other case)", conflict)
    step("a 404 parsed into Problem", not_found)
    step("a 400 parsed into Problem (SELECT without options)", bad_request)
    return summary()


def summary() -> int:
    counts = {s: sum(1 for r in results if r[0] == s) for s in ("PASS", "FAIL", "SKIP")}
    print(f"    python scenario: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
