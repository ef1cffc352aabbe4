"""Dependencies shared by the routers."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from ..sandbox import SandboxPool
from ..sandbox.verdicts import SyntaxVerdicts
from ..secretbox import Keyring


async def get_engine(request: Request) -> AsyncEngine:
    # async on purpose: FastAPI runs plain `def` dependencies in a thread pool, a costly hop per request.
    return request.app.state.engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]


async def get_sandbox(request: Request) -> SandboxPool:
    return request.app.state.sandbox


SandboxDep = Annotated[SandboxPool, Depends(get_sandbox)]


async def get_syntax_verdicts(request: Request) -> SyntaxVerdicts:
    return request.app.state.syntax_verdicts


SyntaxVerdictsDep = Annotated[SyntaxVerdicts, Depends(get_syntax_verdicts)]


async def get_keyring(request: Request) -> Keyring:
    return request.app.state.keyring


KeyringDep = Annotated[Keyring, Depends(get_keyring)]
