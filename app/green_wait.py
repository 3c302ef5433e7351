"""psycopg waits on gevent's event loop directly in gevent-patched processes (the web workers).

psycopg 3 runs libpq non-blocking and hands every wait for its socket to a wait function. In a
process where gevent has patched `select` it picks `wait_poll`, which goes through gevent's
emulation of `select.poll`: a poll object, its registrations and a watcher per fd built and torn
down on every wait, four waits per completion. Waiting on one libev io watcher — what gevent's
own sockets do — cost 5 % less web CPU per job in the worker API bench (interleaved runs,
docs/PERFORMANCE.md). psycopg has no such wait of its own and takes its wait function from
`psycopg.waiting.wait` at each call, so this module sets that. Written here because no library
provides it (psycogreen is for psycopg2).
"""
import logging
import sys

from psycopg.waiting import Ready

log = logging.getLogger("conveyor.db")
_READY = {1: Ready.R, 2: Ready.W, 3: Ready.RW}  # psycopg's Ready for each of its Wait values
_get_hub = None  # gevent's, bound by install(): only processes that run gevent import it


def wait_on_hub(gen, fileno: int, interval: float | None = None):
    """Drive a psycopg generator: wait for the socket readiness it asks for on gevent's loop.

    psycopg's Wait.R/W/RW (1/2/3) are libev's READ and WRITE bits, and its Ready.R/W/RW carry the
    same values. When both were asked, both are answered: libpq's calls are non-blocking, so a
    direction that was not ready simply asks again. `interval` is psycopg's periodic wake-up from a
    blocking wait (so that Ctrl-C gets through); a greenlet waiting on the hub blocks nothing else.
    """
    hub = _get_hub()
    try:
        wanted = next(gen)
        while True:
            watcher = hub.loop.io(fileno, wanted)
            try:
                hub.wait(watcher)
            finally:
                watcher.close()
            wanted = gen.send(_READY[wanted])
    except StopIteration as done:
        return done.value


def gevent_patched(module: str) -> bool:
    """Has gevent monkey-patched `module` in this process (gunicorn's gevent workers)?"""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched(module)


def install() -> bool:
    """Use `wait_on_hub` if gevent has patched `select` in this process; True if it did."""
    global _get_hub
    if not gevent_patched("select"):
        return False
    from gevent import get_hub
    from psycopg import waiting

    _get_hub = get_hub
    if waiting.wait is not wait_on_hub:
        waiting.wait = wait_on_hub
        log.debug("psycopg waits on the gevent hub")
    return True
