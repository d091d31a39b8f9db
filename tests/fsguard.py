"""Helpers of the bad-input tests: make a path unwritable, and snapshot folders to prove nothing changed."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = os.geteuid() == 0


def set_readonly(path: Path, on: bool) -> bool:
    """Make ``path`` unwritable (or writable again); False if this system cannot (root without chattr)."""
    if ROOT:
        if shutil.which("chattr") is None:
            return False
        res = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
        return res.returncode == 0
    mode = 0o555 if path.is_dir() else 0o444
    path.chmod(mode if on else (0o755 if path.is_dir() else 0o644))
    return True


def snapshot(*folders: Path) -> dict[str, tuple]:
    """Every folder and file under ``folders``: files as (size, mtime_ns, sha256), folders as ("dir",)."""
    out: dict[str, tuple] = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in dirs:
                out[os.path.join(root, name)] = ("dir",)
            for name in files:
                p = os.path.join(root, name)
                st = os.stat(p)
                with open(p, "rb") as fh:
                    out[p] = (st.st_size, st.st_mtime_ns, hashlib.sha256(fh.read()).hexdigest())
    return out
