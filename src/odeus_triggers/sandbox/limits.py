"""The sandbox's limits, from the service's settings: one place for the API and the worker."""

from dataclasses import replace

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


def poller_limits(settings: Settings, concurrency: int) -> SandboxLimits:
    """The limits of a scheduler's own pool: the same, with room in each workspace's queue for every
    poll the scheduler may have claimed, so that a claimed poll waits its turn instead of bouncing.
    The per-workspace share of the workers, and the turns between workspaces, stay."""
    limits = sandbox_limits(settings)
    return replace(limits, max_queued_per_tenant=max(limits.max_queued_per_tenant, concurrency))
