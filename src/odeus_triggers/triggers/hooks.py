"""What the rest of the service does after a trigger changes, without triggers/ importing it.

The application wires the hooks (`app.py`); subscriptions/ registers the one that pauses
subscriptions whose inputs no longer fit the trigger's fields. A hook runs after the trigger's
own transaction has committed, so its failure never undoes the update: it is logged, and the
scheduler makes the same check before each poll.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("odeus_triggers.triggers")

AfterUpdate = Callable[[AsyncEngine, uuid.UUID, uuid.UUID], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class TriggerHooks:
    after_update: Sequence[AfterUpdate] = ()

    async def updated(self, engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> None:
        for hook in self.after_update:
            try:
                await hook(engine, integration_id, trigger_id)
            except Exception as exc:  # the update stands; the next poll checks again
                log.warning("after updating trigger %s: %s failed (%s)", trigger_id, hook.__name__, type(exc).__name__)
