"""The application factory: lifespan, middleware, error handlers, and one router mounted twice."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from . import __version__
from .api.docs import install_docs
from .api.openapi import build_openapi, operation_id
from .api.routing import API_BASES, mount_api
from .auth.caller import KeyVerifier
from .config import Settings, get_settings
from .db.engine import make_engine
from .db.sealed import verify_canary
from .db.sql import is_outage
from .edge.access_log import AccessLogMiddleware
from .edge.body_limit import BodyLimitMiddleware
from .edge.browser_block import BrowserBlockMiddleware
from .edge.handlers import install_handlers
from .edge.rate_limit import RateLimitMiddleware
from .edge.request_id import RequestIdMiddleware
from .errors import Problem
from .idempotency.service import IdempotencyStore
from .integrations.access import IntegrationDirectory
from .integrations.router import router as integrations_router
from .integrations.schemas import IntegrationIn
from .integrations.secrets_router import router as integration_secrets_router
from .integrations.secrets_schemas import IntegrationSecretsIn
from .ops.logs import configure_logging
from .ops.metrics import Metrics
from .ops.router import router as ops_router
from .ratelimit.counter import RateCounter
from .ratelimit.policies import Policies
from .runtime.metrics import DeliveryMetrics, PollMetrics
from .runtime.process import Runtime
from .sandbox import SandboxPool
from .sandbox.limits import poller_limits, sandbox_limits
from .sandbox.verdicts import SyntaxVerdicts
from .secretbox import Keyring, KeyringError, keyring_from_settings
from .subscriptions.events_router import router as events_router
from .subscriptions.poll import PollDeps
from .subscriptions.polls_router import router as polls_router
from .subscriptions.router import router as subscriptions_router
from .subscriptions.schemas import SubscriptionCreate, SubscriptionPatch
from .subscriptions.service import pause_invalid_subscriptions
from .triggers.dry_run import router as dry_run_router
from .triggers.hooks import TriggerHooks
from .triggers.router import router as triggers_router
from .triggers.schemas import TestRunIn, TriggerIn

# The request bodies: each route parses its own body, so FastAPI does not see them.
log = logging.getLogger("odeus_triggers.app")

OPENAPI_MODELS = (Problem, TriggerIn, IntegrationIn, TestRunIn, IntegrationSecretsIn, SubscriptionCreate, SubscriptionPatch)

DESCRIPTION = """
Server-to-server API for defining **triggers**: named event monitors with input fields and
JavaScript polling code that start workflows when something happens in another system.

Authenticate with `Authorization: Bearer <API key>`. Errors are `application/problem+json`.
Every route is also served under `/api/public` for dedicated deployments.
"""


async def _check_keyring(engine: AsyncEngine, keyring: Keyring) -> None:
    """Refuse a keyring that cannot open the stored secrets. `serve` checks first and strictly;
    here a database that is down only postpones the check, so that the API starts and answers 503
    until the database is back, as it does for every other outage."""
    try:
        await verify_canary(engine, keyring)
    except KeyringError:
        await engine.dispose()
        raise
    except Exception as exc:
        if not is_outage(exc):
            await engine.dispose()
            raise
        log.warning("the database is unreachable: the encryption keys are checked against it at the next start")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keyring = keyring_from_settings(settings)
        engine = make_engine(settings)
        await _check_keyring(engine, keyring)
        app.state.engine = engine
        app.state.keyring = keyring
        app.state.key_verifier = KeyVerifier(engine, settings.auth_cache_seconds)
        app.state.integrations = IntegrationDirectory(engine)
        app.state.idempotency = IdempotencyStore(engine, keyring)
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        app.state.rate_counter = RateCounter(redis_url, settings.rate_limit_key_prefix)
        await app.state.rate_counter.start()
        # Workers are spawned on first use, so that start-up stays fast and apps that never see
        # polling code never start any.
        app.state.sandbox = SandboxPool(sandbox_limits(settings))
        app.state.syntax_verdicts = SyntaxVerdicts(app.state.sandbox)
        runtime, poll_sandbox = None, None
        if settings.runs_embedded_worker:
            # A pool of its own, so that polls never queue the test runs of the API's pool; like
            # that one, it spawns its workers on first use. Concurrency beyond the pool's workers
            # would only queue polls in the sandbox.
            concurrency = 2 * settings.polling_workers
            poll_sandbox = SandboxPool(poller_limits(settings, concurrency))
            deps = PollDeps(engine=engine, sandbox=poll_sandbox, keyring=keyring, observer=app.state.poll_metrics)
            runtime = Runtime.build(settings, deps, concurrency=concurrency, deliveries=app.state.delivery_metrics)
            runtime.start()
        try:
            yield
        finally:
            # Before the engine and the pools go: the drain still writes and gives leases back.
            if runtime is not None:
                await runtime.stop()
            if poll_sandbox is not None:
                await poll_sandbox.close()
            await app.state.sandbox.close()
            await app.state.rate_counter.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Odeus Triggers API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Starlette's default answers `/path/` with a 307 to an absolute URL built from the Host
        # header, before authentication: an open redirect on someone else's host name. No route
        # ends in a slash, so such a path is simply not found.
        redirect_slashes=False,
        # Every operationId is its route function's name in camelCase (createTrigger, listIntegrations).
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    # Always registered: a poll-now through the API counts like a scheduled poll.
    app.state.poll_metrics = PollMetrics(app.state.metrics.registry)
    app.state.delivery_metrics = DeliveryMetrics(app.state.metrics.registry)
    app.state.trigger_hooks = TriggerHooks(after_update=(pause_invalid_subscriptions,))
    mount_api(
        app,
        (
            integrations_router, triggers_router, dry_run_router, integration_secrets_router, subscriptions_router,
            polls_router,
            events_router,
        ),
    )
    app.include_router(ops_router)
    install_docs(app)
    install_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Inside RequestId, so a refusal carries its request id; outside the body limit, so a page on
    # another origin learns nothing about how its body would have been handled.
    app.add_middleware(BrowserBlockMiddleware, public_origins=settings.public_origins)
    # Outside the refusals above, so that they are counted and carry the RateLimit headers too;
    # inside RequestId, so that a 429 carries its request id.
    app.add_middleware(
        RateLimitMiddleware,
        policies=Policies.from_strings(settings.rate_limit, settings.rate_limit_unauthenticated),
        prefixes=tuple(f"{base}/integrations" for base in API_BASES),
    )
    app.add_middleware(RequestIdMiddleware)
    # Outermost, so that the refusals of the middlewares above are timed, counted and logged too.
    app.add_middleware(AccessLogMiddleware, metrics=app.state.metrics, bases=API_BASES)
    app.openapi = lambda: build_openapi(app, models=OPENAPI_MODELS)  # type: ignore[method-assign]
    return app
