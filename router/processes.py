"""`firstline serve`: the worker and performer in this process, the HTTP side in a child.

Why two processes: router.background. Signals go to this process: SIGTERM and SIGINT
stop both, SIGHUP reloads the scope note here and is passed on to the HTTP side (which
reloads it too, or with `--workers N` restarts its workers). If the HTTP side exits on
its own (a port in use, a crash), `serve` stops and exits with status 1, so whatever
supervises it (systemd, Docker, Kubernetes) restarts the whole service; the child is
stopped by the kernel if this process dies first.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from multiprocessing.process import BaseProcess
from pathlib import Path

from router.background import RUNTIME_ENV, build_loops, run_loops
from router.settings import Settings

STOP_WAIT_S = 15.0  # for the HTTP side to finish its requests before it is killed

log = logging.getLogger("firstline.serve")


def serve_split(settings: Settings, host: str, port: int, workers: int) -> int:
    """Run until SIGTERM/SIGINT (0) or until the HTTP side exits on its own (1)."""
    from router.service import ScopeHolder

    runtime = Path(tempfile.mkdtemp(prefix="firstline-"))
    os.environ[RUNTIME_ENV] = str(runtime)  # the HTTP side inherits it
    holder = ScopeHolder(settings)
    worker, actor = build_loops(settings, holder)
    http = multiprocessing.get_context("spawn").Process(
        target=http_child, args=(host, port, workers, os.getpid()), name="firstline-http")
    http.start()
    failed = False

    async def main() -> None:
        nonlocal failed
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def reload() -> None:
            holder.reload()
            if http.pid is not None and http.exitcode is None:
                os.kill(http.pid, signal.SIGHUP)

        def http_ended() -> None:
            nonlocal failed
            loop.remove_reader(http.sentinel)
            if not stop.is_set():
                log.error("the HTTP process exited with status %s; stopping", http.exitcode)
                failed = True
                stop.set()

        loop.add_signal_handler(signal.SIGHUP, reload)
        loop.add_reader(http.sentinel, http_ended)
        loops = asyncio.create_task(run_loops(worker, actor, stop, runtime))
        await stop.wait()
        _stop(http)  # stop taking webhooks while the worker finishes its batch
        await loops

    try:
        asyncio.run(main())
    finally:
        _stop(http)
        http.join(STOP_WAIT_S)
        if http.is_alive():
            http.kill()
            http.join()
        shutil.rmtree(runtime, ignore_errors=True)
    return 1 if failed else 0


def _stop(process: BaseProcess) -> None:
    if process.is_alive():
        process.terminate()  # SIGTERM: uvicorn finishes the requests in flight


def http_child(host: str, port: int, workers: int, parent: int) -> None:
    """The HTTP side: uvicorn serving router.service:app_from_env (spawned process)."""
    _die_with(parent)
    from router.service_cli import _logging, run_http

    _logging()
    run_http(host, port, workers)


def _die_with(parent: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux), so no HTTP side outlives
    its worker and keeps storing deliveries nobody decides."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # it died before we asked
        sys.exit(1)
