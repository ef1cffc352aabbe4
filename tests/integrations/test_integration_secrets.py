"""Integration secrets: the merge body, its limits, access, and values that are sealed to their
row and never come back in a response."""

import asyncio
import uuid
from typing import cast

import pytest
from sqlalchemy import Table, delete, select, update

from odeus_triggers.auth.scopes import Scope
from odeus_triggers.db.runtime_tables import IntegrationSecret
from odeus_triggers.db.tables import Integration
from odeus_triggers.integrations.secrets import integration_secret_values
from odeus_triggers.secretbox import SealBroken

from support.helpers import assert_problem, error_fields, key_for, make_tenant

secrets_table = cast(Table, IntegrationSecret.__table__)
VALUE = "tok_live_9f8e7d6c5b4a"


def secrets_path(base, integration_id):
    return f"{base}/integrations/v1/{integration_id}/secrets"


async def put(client, tenant, secrets, base=""):
    return await client.put(secrets_path(base, tenant.integration_id), json={"secrets": secrets}, headers=tenant.auth)


async def names(client, tenant):
    response = await client.get(secrets_path("", tenant.integration_id), headers=tenant.auth)
    assert response.status_code == 200, response.text
    return [s["name"] for s in response.json()["secrets"]]


async def stored(app, tenant):
    return await integration_secret_values(app.state.engine, app.state.keyring, uuid.UUID(tenant.integration_id))


async def test_put_sets_and_get_lists_names_sorted(client, tenant, base):
    response = await put(client, tenant, {"b_TOKEN": VALUE, "A_KEY": "k" * 10, "_x": "valuevalue"}, base)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    listed = response.json()["secrets"]
    assert [s["name"] for s in listed] == ["A_KEY", "_x", "b_TOKEN"]
    assert all(set(s) == {"name", "updatedAt"} and s["updatedAt"].endswith("Z") for s in listed)
    got = await client.get(secrets_path(base, tenant.integration_id), headers=tenant.auth)
    assert got.status_code == 200
    assert got.json() == response.json()


async def test_merge_sets_replaces_deletes_and_keeps_absent_names(app, client, tenant):
    assert (await put(client, tenant, {"KEEP": "keep-me", "REPLACE": "old-value", "DROP": "drop-me"})).status_code == 200
    first = (await client.get(secrets_path("", tenant.integration_id), headers=tenant.auth)).json()["secrets"]
    response = await put(client, tenant, {"REPLACE": "new-value", "DROP": None, "NEVER_SET": None, "ADD": "added"})
    assert response.status_code == 200, response.text
    assert [s["name"] for s in response.json()["secrets"]] == ["ADD", "KEEP", "REPLACE"]
    assert await stored(app, tenant) == {"ADD": "added", "KEEP": "keep-me", "REPLACE": "new-value"}
    kept = {s["name"]: s["updatedAt"] for s in response.json()["secrets"]}
    assert kept["KEEP"] == {s["name"]: s["updatedAt"] for s in first}["KEEP"]


async def test_an_empty_map_changes_nothing(app, client, tenant):
    await put(client, tenant, {"A": "aaaa"})
    response = await put(client, tenant, {})
    assert response.status_code == 200
    assert [s["name"] for s in response.json()["secrets"]] == ["A"]


async def test_a_new_integration_has_no_secrets(client, tenant, base):
    response = await client.get(secrets_path(base, tenant.integration_id), headers=tenant.auth)
    assert response.status_code == 200
    assert response.json() == {"secrets": []}


async def test_values_never_appear_in_a_response(client, tenant):
    too_long = VALUE + "x" * 9000
    bodies = [
        {"secrets": {"GOOD": VALUE}},
        {"secrets": {"GOOD": VALUE, "bad name": VALUE}},
        {"secrets": {"LONG": too_long}},
        {"secrets": {"GOOD": VALUE}, "extra": VALUE},
    ]
    for body in bodies:
        response = await client.put(secrets_path("", tenant.integration_id), json=body, headers=tenant.auth)
        assert VALUE not in response.text
    listed = await client.get(secrets_path("", tenant.integration_id), headers=tenant.auth)
    assert VALUE not in listed.text


@pytest.mark.parametrize(
    ("secrets", "fields"),
    [
        ({"1ABC": "v"}, ['secrets["1ABC"]']),
        ({"has-dash": "v"}, ['secrets["has-dash"]']),
        ({"A" * 65: "v"}, ["secrets." + "A" * 65]),
        ({"": "v"}, ['secrets[""]']),
        ({"ÉCOLE": "v"}, ["secrets.ÉCOLE"]),
        ({"NUM": 7}, ["secrets.NUM"]),
        ({"BOOL": True}, ["secrets.BOOL"]),
        ({"OBJ": {"a": "b"}}, ["secrets.OBJ"]),
        ({"LIST": ["a"]}, ["secrets.LIST"]),
        ({"EMPTY": ""}, ["secrets.EMPTY"]),
        ({"BIG": "x" * 8193}, ["secrets.BIG"]),
        ({"BIG": "é" * 4097}, ["secrets.BIG"]),
        ({"BIG": "😀" * 2049}, ["secrets.BIG"]),
    ],
)
async def test_each_bad_entry_is_a_400_naming_it(client, tenant, secrets, fields):
    response = await put(client, tenant, secrets)
    assert_problem(response, 400, "validation_error")
    assert error_fields(response) == fields


async def test_sixty_four_character_name_and_8_kib_values_are_accepted(app, client, tenant):
    body = {"A" * 64: "x" * 8192, "TWO_BYTES": "é" * 4096, "FOUR_BYTES": "😀" * 2048}
    response = await put(client, tenant, body)
    assert response.status_code == 200, response.text
    assert await stored(app, tenant) == body


async def test_every_problem_in_one_400_and_nothing_written(app, client, tenant, base):
    await put(client, tenant, {"KEPT": "original"})
    before = (await client.get(secrets_path(base, tenant.integration_id), headers=tenant.auth)).json()
    body = {"NEW": "fine", "KEPT": None, "bad-name": "v", "NUM": 1, "BIG": "x" * 8193}
    response = await put(client, tenant, body, base)
    assert_problem(response, 400, "validation_error")
    assert sorted(error_fields(response)) == sorted(['secrets["bad-name"]', "secrets.NUM", "secrets.BIG"])
    after = (await client.get(secrets_path(base, tenant.integration_id), headers=tenant.auth)).json()
    assert after == before
    assert await stored(app, tenant) == {"KEPT": "original"}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["secrets"]),
        ({"secrets": None}, ["secrets"]),
        ({"secrets": ["A"]}, ["secrets"]),
        ({"secrets": "A=b"}, ["secrets"]),
        ({"secrets": {"A": "value"}, "secret": {}}, ["secret"]),
        ({"secrets": {"bad name": 1}, "extra": 1}, ["extra", 'secrets["bad name"]', 'secrets["bad name"]']),
    ],
)
async def test_a_malformed_body_is_a_400(client, tenant, body, fields):
    response = await client.put(secrets_path("", tenant.integration_id), json=body, headers=tenant.auth)
    assert_problem(response, 400, "validation_error")
    assert sorted(error_fields(response)) == sorted(fields)
    assert await names(client, tenant) == []


async def test_a_body_that_is_not_json_is_415_and_not_an_object_is_400(client, tenant):
    path = secrets_path("", tenant.integration_id)
    response = await client.put(path, content=b"A=b", headers={**tenant.auth, "Content-Type": "text/plain"})
    assert_problem(response, 415, "unsupported_media_type")
    for raw in (b"", b"{", b"[]"):
        response = await client.put(path, content=raw, headers={**tenant.auth, "Content-Type": "application/json"})
        assert_problem(response, 400, "validation_error")


async def test_the_limit_counts_the_merged_set(app, client, tenant):
    assert (await put(client, tenant, {f"S{i:02}": "value" for i in range(50)})).status_code == 200
    response = await put(client, tenant, {"ONE_MORE": "value"})
    problem = assert_problem(response, 400, "validation_error")
    assert error_fields(response) == ["secrets"]
    assert "51" in problem["errors"][0]["message"]
    assert "ONE_MORE" not in await names(client, tenant)
    # Replacing and deleting-then-adding stay within the limit.
    assert (await put(client, tenant, {"S00": "replaced"})).status_code == 200
    response = await put(client, tenant, {"S01": None, "S02": None, "NEW1": "v1v1", "NEW2": "v2v2"})
    assert response.status_code == 200, response.text
    assert len(response.json()["secrets"]) == 50
    assert (await stored(app, tenant))["S00"] == "replaced"


async def test_a_body_over_the_limit_on_its_own_writes_nothing(client, tenant):
    response = await put(client, tenant, {f"S{i:02}": "value" for i in range(51)})
    assert_problem(response, 400, "validation_error")
    assert await names(client, tenant) == []


async def test_concurrent_merges_cannot_together_exceed_the_limit(app, client, tenant):
    bodies = [{f"{p}{i:02}": "value" for i in range(30)} for p in ("A", "B")]
    responses = await asyncio.gather(*(put(client, tenant, b) for b in bodies))
    assert sorted(r.status_code for r in responses) == [200, 400]
    assert len(await names(client, tenant)) == 30


async def test_another_workspace_gets_403_and_an_unknown_integration_404(app, client, tenant, base):
    other = await make_tenant(app)
    for method, kwargs in (("put", {"json": {"secrets": {"A": "value"}}}), ("get", {})):
        response = await client.request(method, secrets_path(base, tenant.integration_id), headers=other.auth, **kwargs)
        assert_problem(response, 403, "integration_forbidden")
        response = await client.request(method, secrets_path(base, str(uuid.uuid4())), headers=tenant.auth, **kwargs)
        assert_problem(response, 404, "integration_not_found")
        response = await client.request(method, secrets_path(base, "not-a-uuid"), headers=tenant.auth, **kwargs)
        assert_problem(response, 400, "validation_error")
        assert error_fields(response) == ["integrationId"]
    assert await names(client, tenant) == []


async def test_a_bad_body_is_400_before_the_integration_is_looked_up(client, tenant):
    response = await client.put(secrets_path("", str(uuid.uuid4())), json={"secrets": {"A": 1}}, headers=tenant.auth)
    assert_problem(response, 400, "validation_error")


async def test_without_a_key_401_and_without_the_scope_403(app, client, tenant, base):
    for method, kwargs in (("put", {"json": {"secrets": {"A": "value"}}}), ("get", {})):
        response = await client.request(method, secrets_path(base, tenant.integration_id), **kwargs)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        headers = await key_for(app, tenant, [Scope.ASSISTANT_API])
        response = await client.request(method, secrets_path(base, tenant.integration_id), headers=headers, **kwargs)
        assert_problem(response, 403, "insufficient_scope")


async def test_values_are_sealed_to_their_row(app, client, tenant):
    other = await make_tenant(app)
    await put(client, tenant, {"API_TOKEN": VALUE, "OTHER_NAME": "placeholder"})
    await put(client, other, {"API_TOKEN": "other-value"})
    integration_id = uuid.UUID(tenant.integration_id)
    async with app.state.engine.connect() as conn:
        token = await conn.scalar(
            select(secrets_table.c.token).where(
                secrets_table.c.integration_id == integration_id, secrets_table.c.name == "API_TOKEN"
            )
        )
    assert token != VALUE and VALUE not in token
    keyring = app.state.keyring
    assert keyring.open(token, f"integration-secret:{integration_id}:API_TOKEN") == VALUE
    with pytest.raises(SealBroken):
        keyring.open(token, f"integration-secret:{integration_id}:OTHER_NAME")
    with pytest.raises(SealBroken):
        keyring.open(token, f"integration-secret:{other.integration_id}:API_TOKEN")
    # Copied into another integration's row, the token no longer opens when read for the runtime.
    async with app.state.engine.begin() as conn:
        await conn.execute(
            update(secrets_table)
            .where(secrets_table.c.integration_id == uuid.UUID(other.integration_id), secrets_table.c.name == "API_TOKEN")
            .values(token=token)
        )
    with pytest.raises(SealBroken):
        await stored(app, other)
    assert await stored(app, tenant) == {"API_TOKEN": VALUE, "OTHER_NAME": "placeholder"}


async def test_the_runtime_reads_values_through_a_connection_too(app, client, tenant):
    await put(client, tenant, {"A": "alpha", "B": "beta"})
    async with app.state.engine.connect() as conn:
        values = await integration_secret_values(conn, app.state.keyring, uuid.UUID(tenant.integration_id))
    assert values == {"A": "alpha", "B": "beta"}


async def test_secrets_are_deleted_with_their_integration(app, client, tenant):
    await put(client, tenant, {"A": "alpha"})
    integrations = cast(Table, Integration.__table__)
    async with app.state.engine.begin() as conn:
        await conn.execute(delete(integrations).where(integrations.c.id == uuid.UUID(tenant.integration_id)))
    assert await stored(app, tenant) == {}
