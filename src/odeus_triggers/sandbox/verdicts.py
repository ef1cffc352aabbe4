"""Syntax-check verdicts remembered per exact source text."""

from cachetools import LRUCache

from .contracts import CodeError
from .pool import SandboxPool


class SyntaxVerdicts:
    """Remembers the verdict of the syntax check per exact source text.

    The check is deterministic, and the same code is saved again and again (retries, updates of
    other fields, one template for many triggers); a remembered verdict saves a round trip to a
    check worker. Only definite verdicts are kept: a time-out or a crashed
    worker says nothing about the code.
    """

    def __init__(self, pool: SandboxPool, size: int = 4096) -> None:
        self.pool = pool
        self._verdicts: LRUCache[str, CodeError | None] = LRUCache(maxsize=size)

    async def check(self, code: str) -> CodeError | None:
        if code in self._verdicts:
            return self._verdicts[code]
        error = await self.pool.check_syntax(code)
        if error is None or error.line is not None:
            self._verdicts[code] = error
        return error
