"""The sandbox's limits, from the service's settings: one place for the API and the worker."""

from ..config import Settings
from .contracts import SandboxLimits


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        workers=settings.polling_workers,
        wall_time_s=settings.polling_timeout_seconds,
        memory_bytes=settings.polling_memory_mb * 1024 * 1024,
        max_fetches=settings.polling_max_fetches,
        allow_private_network=settings.polling_allow_private_network,
        worker_uid=settings.polling_worker_uid,
        worker_gid=settings.polling_worker_gid,
        check_workers=settings.polling_check_workers,
        max_runs_per_tenant=settings.polling_max_runs_per_workspace,
        max_queued_per_tenant=settings.polling_max_queued_per_workspace,
    )
