"""405 Method Not Allowed, the way OpenAPI reads paths: a concrete path (`/integrations/v1/create`,
`…/triggers/create`) is matched before a templated one, and `Allow` lists every method of the path."""

import uuid

import pytest

from support.helpers import assert_problem

IID, TID = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        # Concrete paths, which a templated route would otherwise take (as a malformed id: 400).
        ("GET", "/integrations/v1/create", "POST"),
        ("DELETE", "/integrations/v1/create", "POST"),
        ("PUT", f"/integrations/v1/{IID}/triggers/create", "POST"),
        ("DELETE", f"/integrations/v1/{IID}/triggers/create", "POST"),
        ("GET", f"/integrations/v1/{IID}/triggers/create", "POST"),
        ("POST", "/integrations/v1/get", "GET"),
        # A path served by two routes names both methods.
        ("OPTIONS", f"/integrations/v1/{IID}/triggers/{TID}", "DELETE, GET, PUT"),
        ("PATCH", f"/integrations/v1/{IID}/triggers/{TID}", "DELETE, GET, PUT"),
        ("POST", f"/integrations/v1/{IID}/triggers/{TID}", "DELETE, GET, PUT"),
        ("POST", f"/integrations/v1/{IID}/triggers", "GET"),
        ("DELETE", f"/integrations/v1/{IID}", "GET"),
        ("GET", f"/integrations/v1/{IID}/triggers/{TID}/test", "POST"),
        # Whatever the id looks like: the method is judged before anything else.
        ("PATCH", "/integrations/v1/not-a-uuid/triggers/nor-this", "DELETE, GET, PUT"),
    ],
)
async def test_an_unsupported_method_is_405_with_the_path_s_methods(client, base, method, path, allow):
    response = await client.request(method, base + path)
    problem = assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow
    assert allow in problem["detail"]


async def test_a_supported_method_still_reaches_its_route(client, tenant, base):
    created = await client.post(f"{base}/integrations/v1/create", json={"name": "Still routed"}, headers=tenant.auth)
    assert created.status_code == 201, created.text
    listed = await client.get(f"{base}/integrations/v1/get", headers=tenant.auth)
    assert listed.status_code == 200
    malformed = await client.get(f"{base}/integrations/v1/not-a-uuid", headers=tenant.auth)
    assert_problem(malformed, 400, "validation_error")


async def test_an_unknown_path_is_still_404(client, base):
    assert_problem(await client.get(f"{base}/integrations/v1/{IID}/nothing"), 404, "not_found")
