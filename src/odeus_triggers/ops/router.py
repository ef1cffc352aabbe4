"""Operations endpoints: liveness, readiness and metrics, for the platform rather than API clients.

They stay out of the OpenAPI document: its `servers` list both API bases, and these live only at
the root, outside the API's authentication and rate limit.
"""

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..api.deps import EngineDep
from ..errors import ServiceUnavailable

log = logging.getLogger("odeus_triggers.ops")

# The probe must answer, whatever the database does, before the orchestrator gives up on it:
# give the probe a time-out above this one (Kubernetes' default of 1 s is below it).
READY_TIMEOUT_SECONDS = 2.0

router = APIRouter(include_in_schema=False)


@router.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> dict[str, str]:
    """Alive as long as the event loop answers; never touches the database."""
    return {"status": "ok"}


async def _ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@router.api_route("/readyz", methods=["GET", "HEAD"])
async def readyz(engine: EngineDep) -> dict[str, str]:
    try:
        await asyncio.wait_for(_ping(engine), READY_TIMEOUT_SECONDS)
    except Exception as exc:
        # The type only: driver messages can quote connection details.
        log.warning("readiness check failed: %s", type(exc).__name__)
        raise ServiceUnavailable() from None
    return {"status": "ok"}


@router.get("/metrics")
async def metrics(request: Request, engine: EngineDep) -> Response:
    await request.app.state.metrics.subscriptions.refresh(engine)
    body, content_type = request.app.state.metrics.render(request.headers.get("accept"))
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
