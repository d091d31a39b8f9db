"""Executors: where the study's jobs run. Both yield ``(job, rows)`` as each job finishes.

- :class:`LocalExecutor`: in this process, one job after the other.
- :class:`DaskExecutor`: a Dask ``distributed`` cluster, either a local one started here
  (``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)``) or an existing scheduler
  (``--scheduler tcp://host:8786``; for SLURM/PBS start one with dask-jobqueue, see docs/studies.md).
  Each trained checkpoint is scattered once (``client.scatter``) and referenced by every job, so it
  travels to a worker once; each job is submitted with ``retries=2`` and the scheduler reschedules
  the jobs of a worker that dies, so the study completes.

Executors know nothing of the runner: ``map(fn, items)`` calls ``fn(ckpt, **kwargs)`` for each
``(job, ckpt, kwargs)`` item (the runner passes :func:`analogmed.study.runner.run_job`).
A scheduler address is validated and contacted (with a timeout) before any work: see
:func:`check_scheduler`.
"""
from __future__ import annotations

import socket
import subprocess
import sys
from typing import Callable, Iterable, Iterator
from urllib.parse import urlsplit

from analogmed.errors import UserError

#: Seconds to wait for a Dask scheduler to answer (TCP connect + identity handshake).
CONNECT_TIMEOUT_S = 10.0
SCHEMES = ("tcp", "tls")


class LocalExecutor:
    """Run jobs in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        for job, ckpt, kw in items:
            yield job, fn(ckpt, **kw)


def _worker_setup():
    import torch

    torch.set_num_threads(1)


class DaskExecutor:
    """Run jobs on a Dask cluster (local with ``workers`` processes, or at ``scheduler``)."""

    def __init__(self, workers: int = 0, scheduler: str | None = None, connect_timeout_s: float | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise UserError("--workers/--scheduler need dask.distributed; pip install 'dask[distributed]'") from None
        self.cluster = None
        if scheduler:
            scheduler = check_scheduler(scheduler, connect_timeout_s)
            try:
                self.client = Client(scheduler, timeout=f"{connect_timeout_s or CONNECT_TIMEOUT_S}s")
            except (OSError, TimeoutError) as exc:
                raise UserError(f"Dask scheduler {scheduler} is unreachable ({type(exc).__name__}); "
                                f"check the address or run without --scheduler") from None
        else:
            self.cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)
        self.client.run(_worker_setup)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        from distributed import as_completed

        scattered: dict[int, object] = {}
        futures = {}
        for job, ckpt, kw in items:
            if id(ckpt) not in scattered:
                scattered[id(ckpt)] = self.client.scatter(ckpt)
            fut = self.client.submit(fn, scattered[id(ckpt)], retries=2, pure=False, **kw)
            futures[fut] = job
        # results gathered by as_completed itself (on the client's loop), not by Future.result() here
        for fut, result in as_completed(futures, with_results=True):
            yield futures[fut], result


def parse_scheduler(address: str) -> tuple[str, str, int]:
    """``tcp://host:port`` (or ``host:port``, ``tls://...``) -> (scheme, host, port); UserError if malformed."""
    text = str(address).strip()
    hint = "give the scheduler's address, e.g. tcp://127.0.0.1:8786"
    if not text:
        raise UserError(f"--scheduler is empty; {hint}")
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UserError(f"--scheduler {address!r}: unknown protocol {scheme!r} (use {' or '.join(SCHEMES)}); {hint}")
    try:
        port = parts.port
    except ValueError:
        raise UserError(f"--scheduler {address!r}: the port is not a number in 1..65535; {hint}") from None
    host = parts.hostname
    if not host or port is None or not 1 <= port <= 65535 or parts.path not in ("", "/") or parts.query:
        raise UserError(f"--scheduler {address!r} is not a scheduler address (host:port); {hint}")
    return scheme, host, port


#: The identity handshake, run in a child process (``python -c _PROBE address timeout_s``): exit 0 if a Dask
#: scheduler answered. A child keeps this process's asyncio state untouched (``asyncio.run`` here would reset
#: the main thread's event loop under the Dask clients of the same process).
_PROBE = """
import asyncio, sys
from distributed.comm import connect

async def identity(address, timeout_s):
    comm = await connect(address, timeout=timeout_s)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()

t = float(sys.argv[2])
info = asyncio.run(asyncio.wait_for(identity(sys.argv[1], t), t))
sys.exit(0 if isinstance(info, dict) and info.get("type") == "Scheduler" else 3)
"""


def check_scheduler(address: str, timeout_s: float | None = None) -> str:
    """Validate ``address`` and ask it who it is, within ``timeout_s`` seconds; returns the normalised address.

    UserError (one line) if it is malformed, nothing listens there, or what answers is not a Dask scheduler
    (e.g. an HTTP server, which would otherwise make the client hang).
    """
    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    scheme, host, port = parse_scheduler(address)
    norm = f"{scheme}://{host}:{port}" if ":" not in host else f"{scheme}://[{host}]:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"Dask scheduler {norm} is unreachable ({reason}); start it (dask scheduler) or check "
                        f"the address, or run without --scheduler") from None
    try:
        res = subprocess.run([sys.executable, "-c", _PROBE, norm, repr(float(timeout_s))], capture_output=True,
                             timeout=timeout_s + 60)  # + the child's import of distributed
        ok = res.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        raise UserError(f"{norm} answers but is not a Dask scheduler (no identity reply within {timeout_s:g} s); "
                        f"give the scheduler's address (its port is 8786 by default)")
    return norm


def check_executor_args(workers: int = 0, scheduler: str | None = None) -> None:
    """UserError unless ``workers`` >= 0 and ``scheduler`` (if given) is a reachable Dask scheduler."""
    if workers < 0:
        raise UserError(f"--workers {workers} is invalid; give 0 (in-process) or a number of Dask workers")
    if workers and scheduler:
        raise UserError("give either --workers (a local cluster) or --scheduler (an existing one), not both")
    if scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise UserError("--scheduler needs dask.distributed; pip install 'dask[distributed]'") from None
        check_scheduler(scheduler)


def make_executor(workers: int = 0, scheduler: str | None = None):
    """:class:`DaskExecutor` when ``workers`` > 0 or ``scheduler`` is given, else :class:`LocalExecutor`."""
    if workers < 0:
        raise UserError(f"--workers {workers} is invalid; give 0 (in-process) or a number of Dask workers")
    if workers or scheduler:
        return DaskExecutor(workers=workers, scheduler=scheduler)
    return LocalExecutor()
