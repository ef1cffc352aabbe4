"""A 400 lists at most 50 errors, then one entry that counts the rest: a body of a few hundred
kilobytes once held 24,000 unknown input keys and got a 121 MB answer."""

import json

from support.helpers import assert_problem, create_path, run_path

MAX_ERRORS = 50
# 50 slugs of one length, so that none is a substring of another or of an unknown key.
LABELS = [f"Known Field {i:02d}" for i in range(50)]
SLUGS = [f"knownField{i:02d}" for i in range(50)]


async def trigger_with_50_fields(client, tenant, base) -> str:
    body = {"name": "Many fields", "pollingCode": "return [];", "inputFields": [{"label": label} for label in LABELS]}
    response = await client.post(create_path(base, tenant.integration_id), json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    assert [f["slug"] for f in response.json()["trigger"]["inputFields"]] == SLUGS
    return response.json()["trigger"]["id"]


def unknown_inputs(count: int) -> dict[str, int]:
    return {f"u{i:04x}": 0 for i in range(count)}


async def run(client, tenant, base, trigger_id, inputs):
    content = json.dumps({"inputs": inputs}, separators=(",", ":")).encode()
    return content, await client.post(
        run_path(base, tenant.integration_id, trigger_id),
        content=content,
        headers={**tenant.auth, "Content-Type": "application/json"},
    )


async def test_24000_unknown_input_keys_get_a_small_capped_400(client, tenant, base):
    trigger_id = await trigger_with_50_fields(client, tenant, base)
    content, response = await run(client, tenant, base, trigger_id, unknown_inputs(24_000))
    assert 200_000 < len(content) < 256 * 1024

    problem = assert_problem(response, 400, "validation_error")
    assert len(response.content) < 64 * 1024
    errors = problem["errors"]
    assert len(errors) == MAX_ERRORS + 1
    # 24,000 unknown keys plus the one entry on `inputs` that names the fields: 24,001 in all.
    assert errors[-1] == {"field": "body", "message": "… and 23,951 more errors (only the first 50 are listed)"}
    assert "24,000 more problems" in problem["detail"]
    assert {"field": "inputs.u0000", "message": "is not an input field of this trigger"} in errors
    [summary] = [e for e in errors if e["field"] == "inputs"]
    assert summary["message"].startswith("has 24,000 keys that are not input fields of this trigger; the fields are ")
    for slug in SLUGS:
        assert response.text.count(slug) == 1, slug


async def test_exactly_50_errors_have_no_summary_entry(client, tenant, base):
    trigger_id = await trigger_with_50_fields(client, tenant, base)
    # 49 unknown keys and the entry on `inputs`.
    _, response = await run(client, tenant, base, trigger_id, unknown_inputs(49))
    errors = assert_problem(response, 400, "validation_error")["errors"]
    assert len(errors) == MAX_ERRORS
    assert not any("more error" in e["message"] for e in errors)
    assert errors[1]["field"] == "inputs"

    _, response = await run(client, tenant, base, trigger_id, unknown_inputs(50))
    errors = assert_problem(response, 400, "validation_error")["errors"]
    assert len(errors) == MAX_ERRORS + 1
    assert errors[-1] == {"field": "body", "message": "… and 1 more error (only the first 50 are listed)"}


async def test_every_route_caps_its_errors_the_same_way(client, tenant, base):
    path = create_path(base, tenant.integration_id)
    body = {"name": "ok", **{f"extra{i:05d}": 0 for i in range(MAX_ERRORS)}}
    response = await client.post(path, json=body, headers=tenant.auth)
    errors = assert_problem(response, 400, "validation_error")["errors"]
    assert len(errors) == MAX_ERRORS
    assert all(e["message"].startswith("is not a known field") for e in errors)

    body = {"name": "ok", **{f"extra{i:05d}": 0 for i in range(15_000)}}
    content = json.dumps(body, separators=(",", ":")).encode()
    response = await client.post(path, content=content, headers={**tenant.auth, "Content-Type": "application/json"})
    problem = assert_problem(response, 400, "validation_error")
    assert len(response.content) < 64 * 1024
    assert len(problem["errors"]) == MAX_ERRORS + 1
    assert problem["errors"][-1] == {"field": "body", "message": "… and 14,950 more errors (only the first 50 are listed)"}
    assert "14,999 more problems" in problem["detail"]
    # Nothing was written.
    listed = await client.get(f"{base}/integrations/v1/{tenant.integration_id}", headers=tenant.auth)
    assert listed.json()["integration"]["triggers"] == []
