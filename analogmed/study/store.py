"""Results store: one SQLite database (WAL journal) per study.

Tables:

- ``meta(key, value)``: ``study`` (name), ``fingerprint`` (of the study config), ``config`` (JSON);
- ``models(model_key, model_id, task, label, grp, spec, image_size)``: the networks of the study
  (``image_size``: JSON list, the task's spatial input shape);
- ``results``: one row per evaluation, primary key (model_key, task, preset, t_inference_s, repetition),
  columns ``study, model_key, model_id, task, preset, t_inference_s, repetition, seed, program_seed,
  score, metrics`` (JSON of every metric of :func:`analogmed.evaluate.metrics.evaluate_model`),
  ``digital_score, wall_s, versions`` (JSON: python, torch, aihwkit, analogmed), ``finished_at`` (UTC).

Durability: the rows of one hardware instance (all its drift times) are written in one transaction
(``synchronous=FULL``), so a kill at any moment (``kill -9``) leaves every finished instance and no half
row; resuming recomputes only missing instances. Results do not depend on the order of evaluation
(every draw is seeded from (seed, repetition, t)), so a resumed study ends with the same table.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable

import pandas as pd

from analogmed.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    model_key TEXT PRIMARY KEY, model_id TEXT NOT NULL, task TEXT NOT NULL, label TEXT,
    grp TEXT, spec TEXT NOT NULL, image_size TEXT);
CREATE TABLE IF NOT EXISTS results (
    study TEXT NOT NULL, model_key TEXT NOT NULL, model_id TEXT NOT NULL, task TEXT NOT NULL,
    preset TEXT NOT NULL, t_inference_s REAL NOT NULL, repetition INTEGER NOT NULL,
    seed INTEGER NOT NULL, program_seed INTEGER NOT NULL, score REAL NOT NULL, metrics TEXT NOT NULL,
    digital_score REAL, wall_s REAL NOT NULL, versions TEXT NOT NULL, finished_at TEXT NOT NULL,
    PRIMARY KEY (model_key, task, preset, t_inference_s, repetition));
CREATE TABLE IF NOT EXISTS uq_results (
    study TEXT NOT NULL, model_key TEXT NOT NULL, preset TEXT NOT NULL, uq_key TEXT NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (model_key, preset, uq_key));
"""

#: Columns that vary between identical runs (excluded when comparing tables).
VOLATILE_COLUMNS = ("wall_s", "finished_at", "versions")


def versions() -> dict[str, str]:
    """Versions of the packages that produce the numbers."""
    import platform

    out = {"python": platform.python_version()}
    for mod in ("torch", "aihwkit", "monai", "analogmed"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing version is recorded as unknown
            out[mod] = "unknown"
    return out


def store_error(path: Path, exc: sqlite3.Error, writing: bool = True) -> UserError:
    """One line for an SQLite error on the store at ``path``: what is wrong and what to do (never: delete it)."""
    msg = str(exc)
    low = msg.lower()
    if "readonly" in low or "read-only" in low or "unable to open" in low or "access permission" in low:
        return UserError(f"results database {path} is read-only or its folder is not writable ({msg}); make both "
                         f"writable (chmod u+w), or run the study into another folder with --out")
    if "not a database" in low or "malformed" in low or "corrupt" in low or "disk image" in low:
        return UserError(f"results database {path} is damaged ({msg}); restore it from a backup, or run the study "
                         f"into another folder with --out (and keep this file for inspection)")
    if "locked" in low or "busy" in low:
        return UserError(f"results database {path} is locked by another process ({msg}); wait for it to finish "
                         f"and try again")
    if "disk is full" in low or "full" in low:
        return UserError(f"cannot write results to {path} ({msg}); free disk space and resume (finished "
                         f"evaluations are kept)")
    what = "write" if writing else "read"
    return UserError(f"cannot {what} results database {path} ({msg}); check the file, or run the study into "
                     f"another folder with --out")


def check_store_writable(path: Path) -> None:
    """UserError unless the existing store at ``path`` can be opened for writing (nothing is changed)."""
    import os

    for p in (path, *(Path(f"{path}{s}") for s in ("-wal", "-shm"))):
        if not p.exists():
            continue
        try:
            os.close(os.open(p, os.O_RDWR))
        except OSError as exc:
            raise UserError(f"results database {path} is read-only ({exc.strerror}: {p.name}); make it writable "
                            f"(chmod u+w), or run the study into another folder with --out") from None


def _sqlite_error(exc: BaseException | None) -> sqlite3.Error | None:
    """The sqlite3 error behind ``exc`` (pandas wraps it in its own DatabaseError), or None."""
    while exc is not None:
        if isinstance(exc, sqlite3.DatabaseError):
            return exc
        if type(exc).__name__ == "DatabaseError" and type(exc).__module__.startswith("pandas"):
            return sqlite3.DatabaseError(str(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _open_readonly(path: Path) -> sqlite3.Connection:
    """Read-only connection that creates no file beside the store.

    Without a ``-wal`` file no process is writing (a WAL writer keeps one), so the file is read as
    immutable (SQLite would otherwise leave ``-wal``/``-shm`` files that a read-only connection cannot
    remove); with one, a plain read-only connection sees the writer's latest commits.
    """
    from urllib.parse import quote

    uri = "file:" + quote(str(path.resolve()))
    if not Path(f"{path}-wal").exists():
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=60, isolation_level=None)
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60, isolation_level=None)
        conn.execute("SELECT name FROM sqlite_master").fetchall()
        return conn
    except sqlite3.OperationalError as exc:
        low = str(exc).lower()
        if "unable to open" not in low and "readonly" not in low and "read-only" not in low:
            raise
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=60, isolation_level=None)


class Store:
    """A study's SQLite results database. Open with :meth:`open`; use as a context manager."""

    def __init__(self, path: str | Path, conn: sqlite3.Connection):
        self.path = Path(path)
        self.conn = conn

    @classmethod
    def open(cls, path: str | Path, create: bool = True) -> "Store":
        """Open (or create) the database at ``path`` in WAL mode for writing (``create=True``), or an
        existing one for reading only (``create=False``: status, export, plot; a read-only file is fine).

        A damaged, foreign or unwritable file is a UserError naming the store and what to do; the advice
        never includes deleting it (another run may be using it).
        """
        path = Path(path)
        if not create and not path.is_file():
            if path.exists():
                raise UserError(f"results database {path} is not a file; give a study file, study folder or "
                                f"results.sqlite")
            raise UserError(f"results database {path} not found; run the study first (analogmed study run FILE)")
        if create and path.exists() and not path.is_file():
            raise UserError(f"results database {path} exists and is not a file; choose another --out folder")
        conn = None
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, timeout=60, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(SCHEMA)
            else:
                side = [Path(f"{path}{s}") for s in ("-wal", "-shm")]
                fresh = [p for p in side if not p.exists()]  # made by this open: removed again on failure
                conn = _open_readonly(path)
                names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not {"meta", "models", "results"} <= names:
                    raise UserError(f"{path} is an SQLite database but not a study's results store (no results "
                                    f"table); give the results.sqlite written by analogmed study run")
                conn.execute("PRAGMA quick_check(1)").fetchall()
        except (sqlite3.DatabaseError, UserError) as exc:
            if conn is not None:
                conn.close()
            if not create:
                for p in fresh:
                    p.unlink(missing_ok=True)
            if isinstance(exc, UserError):
                raise
            raise store_error(path, exc, writing=create) from None
        except OSError as exc:
            from analogmed.io import os_error

            raise os_error(path, exc) from None
        return cls(path, conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        db_exc = _sqlite_error(exc)
        if db_exc is not None:  # a damaged, read-only or full store found while reading/writing
            raise store_error(self.path, db_exc) from None
        return False

    # -- meta ---------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def bind(self, study: str, fingerprint: str, config: dict) -> None:
        """Tie the database to one study config; UserError if it holds results of a different one."""
        meta = self.meta()
        if meta.get("fingerprint") and meta["fingerprint"] != fingerprint:
            if self.count() > 0:
                raise UserError(f"study file {study!r} changed after results exist in {self.path}; "
                                f"restore it, give it a new name, or run with --new to start over")
        with self._tx():
            for k, v in (("study", study), ("fingerprint", fingerprint),
                         ("config", json.dumps(config, sort_keys=True))):
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, v))

    def add_model(self, model_key: str, model_id: str, task: str, label: str, group: str | None,
                  spec: dict, image_size=None) -> None:
        size = json.dumps([int(x) for x in image_size]) if image_size is not None else None
        with self._tx():
            self.conn.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?, ?)",
                              (model_key, model_id, task, label, group, json.dumps(spec, sort_keys=True), size))

    # -- results ------------------------------------------------------------------------------
    def _tx(self):
        store = self

        class _Tx:
            def __enter__(self):
                store.conn.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, *_):
                store.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")

        return _Tx()

    def done_instances(self) -> set[tuple[str, str, str, int]]:
        """(model_key, task, preset, repetition) of every stored hardware instance."""
        rows = self.conn.execute("SELECT DISTINCT model_key, task, preset, repetition FROM results")
        return {(a, b, c, int(d)) for a, b, c, d in rows}

    def add_rows(self, study: str, rows: Iterable[dict]) -> int:
        """Insert the rows of one hardware instance in one transaction (existing keys are kept)."""
        vers = json.dumps(versions(), sort_keys=True)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        base = {"model_key", "model_id", "task", "preset", "t_inference_s", "repetition", "seed",
                "program_seed", "score", "digital_score", "wall_s"}
        vals = []
        for r in rows:
            metrics = {k: v if isinstance(v, str) else float(v) for k, v in r.items() if k not in base}
            vals.append((study, r["model_key"], r["model_id"], r["task"], r["preset"], float(r["t_inference_s"]),
                         int(r["repetition"]), int(r["seed"]), int(r["program_seed"]), float(r["score"]),
                         json.dumps(metrics, sort_keys=True), r.get("digital_score"), float(r["wall_s"]),
                         vers, now))
        try:
            with self._tx():
                self.conn.executemany("INSERT OR IGNORE INTO results VALUES "
                                      "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", vals)
        except sqlite3.DatabaseError as exc:  # disk full, read-only... the transaction is rolled back
            raise store_error(self.path, exc) from None
        return len(vals)

    def uq_done(self, uq_key: str) -> set[tuple[str, str]]:
        """(model_key, preset) pairs whose [uq] rows for the [uq] settings ``uq_key`` are stored."""
        return {(a, b) for a, b in self.conn.execute("SELECT model_key, preset FROM uq_results WHERE uq_key = ?",
                                                     (uq_key,))}

    def add_uq(self, study: str, model_key: str, preset: str, uq_key: str, rows: list[dict]) -> None:
        """Store the ``uq_evaluate`` rows of one (model, preset) in one transaction."""
        try:
            with self._tx():
                self.conn.execute("INSERT OR IGNORE INTO uq_results VALUES (?, ?, ?, ?, ?)",
                                  (study, model_key, preset, uq_key, json.dumps(rows, default=float)))
        except sqlite3.DatabaseError as exc:
            raise store_error(self.path, exc) from None

    def uq_table(self) -> pd.DataFrame:
        """Every stored [uq] row (one per model, preset, method, t) joined with the model labels."""
        recs = []
        for key, preset, ukey, blob in self.conn.execute("SELECT model_key, preset, uq_key, row FROM uq_results "
                                                         "ORDER BY model_key, preset, uq_key"):
            for r in json.loads(blob):
                recs.append({"model_key": key, "uq_preset": preset, "uq_key": ukey, **r})
        df = pd.DataFrame(recs)
        if df.empty:
            return df
        models = pd.read_sql_query("SELECT model_key, model_id, task, label, grp FROM models", self.conn)
        return models.merge(df, on="model_key", how="right")

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def table(self, with_metrics: bool = True) -> pd.DataFrame:
        """Every result row as a DataFrame, sorted by key; ``metrics`` JSON expanded into columns;
        ``label`` and ``group`` of the model joined in."""
        df = pd.read_sql_query(
            "SELECT r.*, m.label AS label, m.grp AS model_group FROM results r "
            "LEFT JOIN models m USING (model_key) "
            "ORDER BY r.model_key, r.task, r.preset, r.t_inference_s, r.repetition", self.conn)
        if with_metrics and not df.empty:
            extra = pd.DataFrame([json.loads(m) for m in df["metrics"]], index=df.index)
            df = pd.concat([df.drop(columns=["metrics"]), extra], axis=1)
        return df

    def models(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM models ORDER BY model_key", self.conn)


# -- where a study's store lives; opening it for reading ----------------------------------------------
DB_NAME = "results.sqlite"


def study_dir_for(cfg, out: str | Path | None = None) -> Path:
    """``out`` or ``runs/studies/<name>`` for a :class:`~analogmed.study.config.StudyConfig` ``cfg``."""
    return Path(out) if out is not None else Path("runs") / "studies" / cfg.name


def open_results(path: str | Path) -> Store:
    """Store of a study file (its default folder), a shipped study name, a study folder or a ``.sqlite``,
    opened for reading."""
    from analogmed.study.config import load_study

    p = Path(path)
    if p.suffix == ".toml" or (not p.exists() and p.suffix == ""):
        p = study_dir_for(load_study(p))
    if p.is_dir():
        p = p / DB_NAME
    return Store.open(p, create=False)


def export_table(path: str | Path, dest: str | Path) -> Path:
    """Write the results table of ``path`` (see :func:`open_results`) to CSV or Parquet (by suffix).

    With [uq] rows and a .csv ``dest``, they go to ``<stem>-uq.csv`` beside it; both files or neither.
    """
    from analogmed.io import atomic_path, check_output_file

    dest = Path(dest)
    if dest.suffix not in (".csv", ".parquet"):
        raise UserError(f"export file {dest}: unknown format; use a .csv or .parquet name")
    if dest.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError("Parquet export needs pyarrow; pip install pyarrow or export to .csv") from None
    check_output_file(dest, "export file")
    with open_results(path) as store:
        df = store.table()
        uq = store.uq_table()
    uq_dest = dest.with_name(f"{dest.stem}-uq.csv") if not uq.empty and dest.suffix == ".csv" else None
    with atomic_path(dest) as tmp:
        if dest.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        if uq_dest is not None:  # renamed first; the table itself only if this succeeded
            with atomic_path(uq_dest) as tmp_uq:
                uq.to_csv(tmp_uq, index=False)
    return dest


class StudyLock:
    """An exclusive lock on one study folder (``fcntl.flock`` on the folder itself), held while it runs.

    A second ``study run`` of the same study refuses with one line instead of training and evaluating
    everything twice. No lock file is left behind; the lock is released when the process ends, even on
    ``kill -9``.
    """

    def __init__(self, study_dir: str | Path, name: str = ""):
        self.dir = Path(study_dir)
        self.name = name
        self._fd = None

    def acquire(self) -> "StudyLock":
        import fcntl
        import os

        from analogmed.io import os_error

        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir, os.O_RDONLY)
        except OSError as exc:
            raise os_error(self.dir, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UserError(f"study {self.name or self.dir} is already running in {self.dir} (another process "
                            f"holds its lock); wait for it to finish, or run into another folder with --out") from None
        self._fd = fd
        return self

    def release(self) -> None:
        import os

        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
