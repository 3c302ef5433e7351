"""The registry of job handlers: what a job type is called, which RQ queue runs it, and how.

A deployment adds its own type the same way the four built-ins (app/projects/handlers.py) do:

    from app.projects import registry

    def run(ctx):                      # ctx: app.projects.runner.JobContext
        for i, chunk in enumerate(chunks):
            ctx.check_cancelled()      # raises registry.Cancelled when the user cancelled
            ...
            ctx.progress(100 * (i + 1) // len(chunks))
        return {"done": True}          # the job's `result`

    registry.register("Reindex", queue="default", run=run, description="Rebuild the index")

`run` raises `Transient` for an error worth retrying (RQ retries it after `retry_intervals`);
any other exception fails the job with its message. Register at import time of a module named in
the JOB_HANDLER_MODULES setting (comma-separated): the web and worker processes import those at
start-up (import_modules, called when the projects blueprint joins an app).
"""
import importlib
from dataclasses import dataclass, field
from typing import Callable


class Cancelled(Exception):
    """Raised by ctx.check_cancelled(): the user asked to cancel this job."""


class Transient(Exception):
    """A failure worth retrying (a lock timeout, a remote service that is briefly down)."""


@dataclass(frozen=True)
class Handler:
    name: str
    queue: str
    run: Callable
    needs_project: bool = True
    description: str = ""
    retry_intervals: tuple = field(default=(2, 10, 30))


_handlers: dict[str, Handler] = {}


def register(name: str, *, queue: str, run: Callable, needs_project: bool = True, description: str = "",
             retry_intervals: tuple = (2, 10, 30)) -> Handler:
    from app.extensions import QUEUES

    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; use one of {', '.join(QUEUES)}")
    handler = Handler(name, queue, run, needs_project, description, tuple(retry_intervals))
    _handlers[name] = handler
    return handler


def get(name: str) -> Handler | None:
    return _handlers.get(name)


def names() -> list[str]:
    return list(_handlers)


def import_modules(modules) -> None:
    """Import each named module; importing one registers its handlers. A bad name stops start-up."""
    from app.config import ConfigError

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"JOB_HANDLER_MODULES: cannot import {module!r}: {exc}") from exc
