"""`odeus-triggers worker`, and the `serve --with-worker` switch: kept out of cli.py, which
stays a table of commands."""

import argparse
import os

from .config import Settings, get_settings


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError("must be a TCP port, 1 to 65535")
    return number


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    from .runtime.process import run_worker

    run_worker(settings, args.concurrency, args.metrics_port, args.metrics_host)


def add_worker_command(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from .runtime.process import DEFAULT_CONCURRENCY

    p = sub.add_parser("worker", help="poll the subscriptions that are due, until SIGTERM")
    p.add_argument("--concurrency", type=_positive, default=DEFAULT_CONCURRENCY, help="polls in flight at once")
    p.add_argument("--metrics-port", type=_port, default=None, help="serve /metrics and /healthz on this port")
    p.add_argument("--metrics-host", default="0.0.0.0", help="the address the metrics port listens on")
    p.set_defaults(func=cmd_worker)


def add_with_worker_flag(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--with-worker", action="store_true",
        help="also poll subscriptions in the API process (the default on SQLite; on Postgres, run workers instead)",
    )


def apply_with_worker(args: argparse.Namespace) -> Settings:
    """The app is built by uvicorn's factory, maybe in other processes: the choice travels in the
    environment, which they inherit, and the settings are read anew."""
    if getattr(args, "with_worker", False):
        os.environ["ODEUS_EMBEDDED_WORKER"] = "true"
        get_settings.cache_clear()
    return get_settings()
