"""Authentication, scopes, access to integrations, and the order in which they are checked."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from odeus_triggers.auth import admin, keys
from odeus_triggers.auth.scopes import Scope
from odeus_triggers.db.tables import ApiKey
from odeus_triggers.timestamps import utcnow

from support.helpers import assert_problem, create_path, make_tenant

BODY = {"name": "Auth check"}


def unauthorized_body(response):
    problem = assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    return {k: v for k, v in problem.items() if k != "requestId"}


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer not-a-key",
     "Bearer odk_" + "A" * 49, "Bearer " + keys.generate_key()],
    ids=["absent", "empty", "scheme-only", "scheme-space", "basic", "token", "malformed", "bad-checksum", "unknown"],
)
async def test_missing_or_invalid_keys_are_401_and_indistinguishable(client, tenant, base, header):
    headers = {} if header is None else {"Authorization": header}
    response = await client.post(create_path(base, tenant.integration_id), json=BODY, headers=headers)
    reference = await client.post(create_path(base, tenant.integration_id), json=BODY)
    assert unauthorized_body(response) == unauthorized_body(reference)


async def test_bearer_scheme_is_case_insensitive(client, tenant):
    response = await client.post(
        create_path("", tenant.integration_id), json=BODY, headers={"Authorization": f"bearer {tenant.key}"}
    )
    assert response.status_code == 201


async def test_revoked_and_expired_keys_are_401(app, client, settings):
    import httpx

    from odeus_triggers.app import create_app

    # A verifier without a cache, so that revocation is seen at once.
    uncached = create_app(settings.model_copy(update={"auth_cache_seconds": 0}))
    async with uncached.router.lifespan_context(uncached):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=uncached), base_url="http://t") as c:
            tenant = await make_tenant(uncached)
            path = create_path("", tenant.integration_id)
            assert (await c.post(path, json={"name": "Before"}, headers=tenant.auth)).status_code == 201
            await admin.revoke_key(uncached.state.engine, keys.display_prefix(tenant.key))
            unauthorized_body(await c.post(path, json={"name": "After"}, headers=tenant.auth))

            other = await make_tenant(uncached)
            async with uncached.state.engine.begin() as conn:
                await conn.execute(
                    update(ApiKey).where(ApiKey.digest == keys.digest(other.key))
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )
            unauthorized_body(await c.post(create_path("", other.integration_id), json=BODY, headers=other.auth))


async def test_a_key_with_an_expiry_in_the_future_works(app, client):
    tenant = await make_tenant(app)
    new = await admin.create_key(app.state.engine, tenant.workspace_id, [Scope.INTEGRATION_API], expires_in_days=1)
    response = await client.post(
        create_path("", tenant.integration_id), json=BODY, headers={"Authorization": f"Bearer {new.key}"}
    )
    assert response.status_code == 201


async def test_a_key_without_the_scope_is_403(app, client, base):
    tenant = await make_tenant(app, scopes=[Scope.ASSISTANT_API])
    response = await client.post(create_path(base, tenant.integration_id), json=BODY, headers=tenant.auth)
    problem = assert_problem(response, 403, "insufficient_scope")
    assert "INTEGRATION_API" in problem["detail"]


async def test_another_workspaces_integration_is_403(app, client, base):
    mine, theirs = await make_tenant(app), await make_tenant(app)
    response = await client.post(create_path(base, theirs.integration_id), json=BODY, headers=mine.auth)
    problem = assert_problem(response, 403, "integration_forbidden")
    assert problem["detail"] == "No access to this integration."


async def test_an_unknown_integration_is_404(client, tenant, base):
    response = await client.post(create_path(base, str(uuid.uuid4())), json=BODY, headers=tenant.auth)
    assert_problem(response, 404, "integration_not_found")


@pytest.mark.parametrize("bad_id", ["123", "not-a-uuid", f"{{{uuid.uuid4()}}}", uuid.uuid4().hex, "x" * 36])
async def test_an_integration_id_that_is_not_a_uuid_is_400(client, tenant, base, bad_id):
    response = await client.post(create_path(base, bad_id), json=BODY, headers=tenant.auth)
    problem = assert_problem(response, 400, "validation_error")
    assert problem["errors"] == [{"field": "integrationId", "message": "must be a UUID"}]


async def test_check_order_401_before_everything(client):
    response = await client.post(create_path("", "not-a-uuid"), content=b"{", headers={"Content-Type": "text/plain"})
    assert_problem(response, 401, "unauthorized")


async def test_check_order_scope_before_validation(app, client):
    tenant = await make_tenant(app, scopes=[Scope.ASSISTANT_API])
    response = await client.post(create_path("", "not-a-uuid"), json={"name": ""}, headers=tenant.auth)
    assert_problem(response, 403, "insufficient_scope")


async def test_check_order_validation_before_existence_and_access(app, client):
    mine, theirs = await make_tenant(app), await make_tenant(app)
    for integration_id in (str(uuid.uuid4()), theirs.integration_id):
        response = await client.post(create_path("", integration_id), json={"name": ""}, headers=mine.auth)
        assert_problem(response, 400, "validation_error")


async def test_check_order_access_before_conflict(app, client):
    mine, theirs = await make_tenant(app), await make_tenant(app)
    assert (await client.post(create_path("", theirs.integration_id), json=BODY, headers=theirs.auth)).status_code == 201
    response = await client.post(create_path("", theirs.integration_id), json=BODY, headers=mine.auth)
    assert_problem(response, 403, "integration_forbidden")


async def test_unknown_routes_and_methods_are_problems(client, tenant):
    assert_problem(await client.get("/integrations/v1/nothing/here", headers=tenant.auth), 404, "not_found")
    response = await client.get(create_path("", tenant.integration_id), headers=tenant.auth)
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_keys_are_stored_only_as_digests(app, tenant):
    from sqlalchemy import select

    async with app.state.engine.connect() as conn:
        rows = (await conn.execute(select(ApiKey.digest, ApiKey.prefix).where(ApiKey.workspace_id == tenant.workspace_id))).all()
    assert rows == [(keys.digest(tenant.key), tenant.key[:12])]
    assert tenant.key.startswith("odk_") and len(tenant.key) == 53
