"""Safe output: check a location before the work, write files atomically, write sets all-or-nothing.

- :func:`check_output_file` / :func:`check_output_dir`: called by every command BEFORE its computation;
  a bad location (an existing folder where a file goes, a file where a folder goes, a path under a file,
  an unwritable folder) is a :class:`~analogmed.errors.UserError` naming the path and the fix.
  Nothing is created by the check.
- :func:`atomic_path` / :func:`write_text_atomic`: a file appears complete or not at all: it is written
  to a temporary file beside it, flushed to disk (``fsync``), then renamed onto the target. The file
  gets the usual mode ``0666 & ~umask`` (not the 0600 of ``mkstemp``).
- :func:`output_set`: a folder of several files (a table, a summary, figures) appears all together or
  not at all: they are written into a temporary folder beside it, then moved in; on any failure the
  temporary folder is removed and the destination is left as it was.

An ``OSError`` while writing (disk full, permission denied) becomes a UserError naming the path.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from analogmed.errors import UserError


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """Mode of a newly created output file: ``0o666 & ~umask`` (0644 under the usual umask 022)."""
    return 0o666 & ~_umask()


def os_error(path: str | os.PathLike, exc: OSError) -> UserError:
    """One line for an OSError on output ``path``: what happened and the fix."""
    import errno

    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        fix = "free disk space or choose another location"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose a writable location (or make it writable)"
    elif exc.errno == errno.ENOTDIR:
        fix = "a part of the path is a file; choose a path inside a folder"
    elif exc.errno == errno.EISDIR:
        fix = "it is a folder; give a file name"
    else:
        fix = "choose another location"
    return UserError(f"cannot write {path} ({reason}); {fix}")


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p):
        if p.parent == p:
            break
        p = p.parent
    return p


def _check_parent(path: Path, what: str) -> None:
    """The folders above ``path`` are (or can be created as) writable folders."""
    parent = _nearest_existing(path.parent if path.parent != path else path)
    if not parent.is_dir():
        raise UserError(f"{what} {path}: {parent} is a file, so it is not a writable folder; "
                        f"choose a path inside a folder")
    if not _writable_dir(parent):
        raise UserError(f"{what} {path}: folder {parent} is not writable; choose a writable location")


def _writable_dir(folder: Path) -> bool:
    """True if a file can be created in ``folder`` (tries it: permission bits mean little to root)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, tmp = tempfile.mkstemp(prefix=".analogmed-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def check_output_file(path: str | os.PathLike | None, what: str = "output file") -> Path | None:
    """UserError unless ``path`` can be written as a file (creates nothing); returns it as a Path."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is an existing folder; give a file name (e.g. {path / 'out'})")
    if os.path.lexists(path) and not path.is_file():
        raise UserError(f"{what} {path} exists and is not a regular file; choose another name")
    _check_parent(path, what)
    return path


def check_output_dir(path: str | os.PathLike | None, what: str = "output folder") -> Path | None:
    """UserError unless ``path`` is (or can be created as) a writable folder (creates nothing)."""
    if path is None:
        return None
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise UserError(f"{what} {path} exists and is not a folder (a file is there); give a new or existing folder")
    if path.is_dir():
        if not _writable_dir(path):
            raise UserError(f"{what} {path} is not writable; choose a writable location")
        return path
    _check_parent(path, what)
    return path


def _make_parents(path: Path, created: list[Path]) -> None:
    """Create the missing parent folders of ``path``, outermost first, appending each to ``created``
    (so a caller can remove them again if the write fails)."""
    missing = []
    p = path.parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
        created.append(d)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsync'ed and renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched. An OSError while
    creating, writing or renaming becomes a :class:`UserError` naming ``path``.
    """
    path = Path(path)
    check_output_file(path)
    created: list[Path] = []
    try:
        _make_parents(path, created)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
        os.fchmod(fd, file_mode())
        os.close(fd)
    except OSError as exc:
        for d in reversed(created):
            shutil.rmtree(d, ignore_errors=True)
        raise os_error(path, exc) from None
    tmp_path = Path(tmp)
    ok = False
    try:
        yield tmp_path
        try:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise os_error(path, exc) from None
        ok = True
    except OSError as exc:  # raised by the writer (torch.save, savefig, to_csv ...)
        raise os_error(path, exc) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
        if not ok:
            for d in reversed(created):
                shutil.rmtree(d, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextlib.contextmanager
def output_set(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; on success its files are moved into ``folder``.

    All-or-nothing: if the body raises, the temporary folder is removed and ``folder`` is untouched
    (not even created). If ``folder`` did not exist, the temporary folder is renamed onto it (one
    rename); otherwise each file is moved in (files of the same names are replaced, others kept), and
    if a move fails the files already moved are taken back out. Files are fsync'ed before the move.
    """
    folder = Path(folder)
    check_output_dir(folder)
    created: list[Path] = []
    try:
        _make_parents(folder, created)
        stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        os.chmod(stage, 0o777 & ~_umask())
    except OSError as exc:
        for d in reversed(created):
            shutil.rmtree(d, ignore_errors=True)
        raise os_error(folder, exc) from None
    ok = False
    try:
        yield stage
        try:
            files = sorted(p for p in stage.rglob("*") if p.is_file())
            for f in files:
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            if not folder.exists():
                os.rename(stage, folder)
            else:
                _merge(stage, folder, files)
            _fsync_dir(folder)
            _fsync_dir(folder.parent)
        except OSError as exc:
            raise os_error(folder, exc) from None
        ok = True
    except OSError as exc:
        raise os_error(folder, exc) from None
    except UserError as exc:  # name the user's folder, not the temporary one
        raise UserError(str(exc).replace(str(stage), str(folder))) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not ok:
            for d in reversed(created):
                shutil.rmtree(d, ignore_errors=True)


def _merge(stage: Path, folder: Path, files: list[Path]) -> None:
    """Move ``files`` (under ``stage``) into ``folder``; on failure restore what was replaced."""
    moved: list[tuple[Path, Path | None]] = []  # (destination, backup of the file it replaced)
    try:
        for f in files:
            dest = folder / f.relative_to(stage)
            dest.parent.mkdir(parents=True, exist_ok=True)
            backup = None
            if dest.exists():
                backup = f.with_name(f.name + ".previous")
                if _same_fs(dest, backup):
                    os.link(dest, backup)
                else:
                    shutil.copy2(dest, backup)
            os.replace(f, dest)
            moved.append((dest, backup))
    except OSError:
        for dest, backup in reversed(moved):
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, dest)
                else:
                    dest.unlink()
        raise


def _same_fs(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b.parent).st_dev
    except OSError:
        return False


def relocate(paths: list[Path], stage: Path, folder: Path) -> list[Path]:
    """Paths written under ``stage`` (an :func:`output_set` folder) as they are named after the move."""
    return [Path(folder) / Path(p).relative_to(stage) for p in paths]
