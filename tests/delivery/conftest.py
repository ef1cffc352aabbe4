"""The fixtures of the dispatch tests: one real worker and one app that accepts loopback webhooks
per module, and a fresh workspace per test, its subscriptions deleted afterwards."""

import pytest
from dispatch_support import delivery_worker, drop_workspace_subscriptions

from support.helpers import client_of, make_tenant, started_app


@pytest.fixture(scope="module")
def worker(request, settings, tmp_path_factory):
    logs = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with delivery_worker(settings.database_url.get_secret_value(), logs / "w.log") as w:
        yield w


@pytest.fixture(scope="module")
async def private_app(settings):
    async with started_app(settings, delivery_allow_private_network=True) as app:
        yield app


@pytest.fixture
async def api(private_app, worker):
    tenant = await make_tenant(private_app)
    async with client_of(private_app) as client:
        yield client, tenant, private_app.state.engine
    await drop_workspace_subscriptions(private_app.state.engine, tenant.workspace_id)
