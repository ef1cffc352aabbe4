"""Dependencies shared by the routers."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine


async def get_engine(request: Request) -> AsyncEngine:
    # async on purpose: FastAPI runs plain `def` dependencies in a thread pool, a costly hop per request.
    return request.app.state.engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
