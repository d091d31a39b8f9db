"""Executors: where the study's jobs run. Both yield ``(job, rows)`` as each job finishes.

- :class:`LocalExecutor`: in this process, one job after the other.
- :class:`DaskExecutor`: a Dask ``distributed`` cluster, either a local one started here
  (``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)``) or an existing scheduler
  (``--scheduler tcp://host:8786``; for SLURM/PBS start one with dask-jobqueue, see docs/studies.md).
  Each trained checkpoint is scattered once (``client.scatter``) and referenced by every job, so it
  travels to a worker once; each job is submitted with ``retries=2`` and the scheduler reschedules
  the jobs of a worker that dies, so the study completes.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from analogmed.errors import UserError


class LocalExecutor:
    """Run jobs in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, items: Iterable) -> Iterator:
        from analogmed.study.runner import run_job

        for job, ckpt, kw in items:
            yield job, run_job(ckpt, **kw)


def _worker_setup():
    import torch

    torch.set_num_threads(1)


class DaskExecutor:
    """Run jobs on a Dask cluster (local with ``workers`` processes, or at ``scheduler``)."""

    def __init__(self, workers: int = 0, scheduler: str | None = None, connect_timeout_s: float = 10.0):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise UserError("--workers/--scheduler need dask.distributed; pip install 'dask[distributed]'") from None
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=f"{connect_timeout_s}s")
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

    def map(self, items: Iterable) -> Iterator:
        from distributed import as_completed

        from analogmed.study.runner import run_job

        scattered: dict[int, object] = {}
        futures = {}
        for job, ckpt, kw in items:
            if id(ckpt) not in scattered:
                scattered[id(ckpt)] = self.client.scatter(ckpt)
            fut = self.client.submit(run_job, scattered[id(ckpt)], retries=2, pure=False, **kw)
            futures[fut] = job
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def make_executor(workers: int = 0, scheduler: str | None = None):
    """:class:`DaskExecutor` when ``workers`` > 0 or ``scheduler`` is given, else :class:`LocalExecutor`."""
    if workers < 0:
        raise UserError(f"--workers {workers} is invalid; give 0 (in-process) or a number of Dask workers")
    if workers or scheduler:
        return DaskExecutor(workers=workers, scheduler=scheduler)
    return LocalExecutor()
