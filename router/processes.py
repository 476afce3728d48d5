"""`firstline serve`: the worker in this process; the HTTP side and the outbox
performers in child processes.

Why several processes: router.background. Signals go to this process: SIGTERM and
SIGINT stop all of them, SIGHUP reloads the scope note here and is passed on to the HTTP
side (which reloads it too, or with `--workers N` restarts its workers). If a child
exits on its own (a port in use, a crash), `serve` stops and exits with status 1, so
whatever supervises it (systemd, Docker, Kubernetes) restarts the whole service; the
children are stopped by the kernel if this process dies first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

from router.settings import Settings
from router.work.background import (
    RUNTIME_ENV,
    build_actor,
    build_loops,
    build_worker,
    performer_socket,
    run_loops,
)
from router.work.wake import WakeSender

STOP_WAIT_S = 15.0  # for the HTTP side to finish its requests before it is killed
RUNTIME_PREFIX = "firstline-serve-"  # then serve's pid: firstline-serve-1234-k2j4x9
STALE_AFTER_S = 60.0  # a runtime directory unchanged this long, its serve gone: removed

log = logging.getLogger("firstline.serve")


def serve_split(settings: Settings, host: str, port: int, workers: int,
                performers: int = 1) -> int:
    """Run until SIGTERM/SIGINT (0) or until a child exits on its own (1). With
    `performers` 0 the outbox is performed in this process, beside the worker."""
    from router.scope.holder import ScopeHolder

    _forget_dead_runtimes(Path(tempfile.gettempdir()))
    runtime = Path(tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{os.getpid()}-"))
    os.environ[RUNTIME_ENV] = str(runtime)  # the children inherit it
    holder = ScopeHolder(settings)
    if performers:
        worker, actor = build_worker(settings, holder), None
        senders = [WakeSender(runtime / performer_socket(k)) for k in range(performers)]

        def wake_performers() -> None:
            for sender in senders:
                sender.wake()

        worker.on_batch = wake_performers
    else:
        worker, actor = build_loops(settings, holder)
    spawn = multiprocessing.get_context("spawn")
    me = os.getpid()
    children = [spawn.Process(target=http_child, args=(host, port, workers, me),
                              name="firstline-http")]
    children += [spawn.Process(target=performer_child, args=(k, me),
                               name=f"firstline-performer-{k}") for k in range(performers)]
    for child in children:
        child.start()
    failed = False

    async def main() -> None:
        nonlocal failed
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def reload() -> None:
            holder.reload()
            http = children[0]
            if http.pid is not None and http.exitcode is None:
                os.kill(http.pid, signal.SIGHUP)

        def ended(child: BaseProcess) -> None:
            nonlocal failed
            loop.remove_reader(child.sentinel)
            child.join(1.0)  # its pipe closes a moment before its exit status is there
            if not stop.is_set():
                log.error("the %s process exited with status %s; stopping", child.name,
                          child.exitcode)
                failed = True
                stop.set()

        loop.add_signal_handler(signal.SIGHUP, reload)
        for child in children:
            loop.add_reader(child.sentinel, ended, child)
        loops = asyncio.create_task(run_loops(worker, actor, stop, runtime))
        await stop.wait()
        for child in children:
            _stop(child)  # stop taking webhooks while the worker finishes its batch
        await loops

    try:
        asyncio.run(main())
    finally:
        for child in children:
            _stop(child)
        for child in children:
            child.join(STOP_WAIT_S)
            if child.is_alive():
                child.kill()
                child.join()
        shutil.rmtree(runtime, ignore_errors=True)
    return 1 if failed else 0


def _forget_dead_runtimes(tmp: Path) -> None:
    """Remove the runtime directories of `serve` processes that are gone: one killed with
    SIGKILL (or by the OOM killer) cannot remove its own, and each would stay in /tmp.

    Gone means no process has its pid and the directory has not changed for a minute (a
    live worker renames its counters file there every second): a pid is only this PID
    namespace's, and another container may share the directory.
    """
    for path in tmp.glob(f"{RUNTIME_PREFIX}*-*"):
        pid = path.name.removeprefix(RUNTIME_PREFIX).partition("-")[0]
        with contextlib.suppress(OSError):  # gone already, or not ours to look at
            idle = time.time() - path.stat().st_mtime
            if pid.isdigit() and path.is_dir() and idle > STALE_AFTER_S and not _alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _stop(process: BaseProcess) -> None:
    if process.is_alive():
        process.terminate()  # SIGTERM: uvicorn finishes the requests in flight


def http_child(host: str, port: int, workers: int, parent: int) -> None:
    """The HTTP side: uvicorn serving router.service:app_from_env (spawned process)."""
    _die_with(parent, "firstline-http")
    from router.logs import setup_logging
    from router.service import run_http

    setup_logging()
    run_http(host, port, workers)


def performer_child(k: int, parent: int) -> None:
    """Performer k: claim, perform and record outbox actions until SIGTERM (spawned)."""
    _die_with(parent, f"firstline-act{k}")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the scope note is not its business
    from router.logs import setup_logging

    setup_logging()
    actor = build_actor(Settings())
    runtime = Path(os.environ[RUNTIME_ENV])

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_loops(None, actor, stop, runtime, performer_socket(k))

    asyncio.run(main())


def _die_with(parent: int, name: str) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux), so no HTTP side outlives
    its worker and keeps storing deliveries nobody decides; and name the process (what
    `top`, `ps -o comm` and /proc/PID/comm show, at most 15 bytes) for whoever looks."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig, pr_set_name = 1, 15
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
        libc.prctl(pr_set_name, name.encode()[:15])
    if os.getppid() != parent:  # it died before we asked
        sys.exit(1)
