"""Bad input to ``analogmed search run``: exit 2, one line on stderr, nothing created or changed, and the
output location is checked before any work (no task is loaded, no supernet trained)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analogmed.cli import main

ROOT = os.geteuid() == 0
SEARCH = """name = "tiny-search"
platform = "raspberry-pi3"
method = "random"
budget = 2
[[tasks]]
name = "synthetic-2d"
size = 64
n_train = 4
n_val = 2
n_test = 2
[supernet]
widths = [8, 16]
blocks = ["Identity", "A"]
epochs = 1
[standalone]
enabled = false
"""


def _set_readonly(path: Path, on: bool) -> bool:
    if ROOT:
        if shutil.which("chattr") is None:
            return False
        return subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True).returncode == 0
    path.chmod(0o555 if on else 0o755)
    return True


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    d = tmp_path_factory.mktemp("sbad")
    (d / "search.toml").write_text(SEARCH)
    (d / "lookup.toml").write_text(SEARCH.replace("[standalone]", '[analog]\nalpha_source = "nasbench"\n'
                                                  f'nasbench = "{d / "nope.json"}"\n[standalone]'))
    (d / "shipped.toml").write_text(SEARCH.replace("[standalone]", '[analog]\nalpha_source = "nasbench"\n'
                                                   'nasbench = "nasbench-mni152-2d"\n[standalone]'))
    (d / "afile").write_text("a file\n")
    (d / "notsearch").mkdir()
    (d / "notsearch" / "thesis.tex").write_text("precious\n")
    ro = d / "ro"
    ro.mkdir()
    ok = _set_readonly(ro, True)
    yield {"d": d, "ro_ok": ok}
    _set_readonly(ro, False)


def _snapshot(*folders: Path) -> dict[str, tuple]:
    out = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in dirs:
                out[os.path.join(root, name)] = ("dir",)
            for name in files:
                p = os.path.join(root, name)
                with open(p, "rb") as fh:
                    out[p] = (os.stat(p).st_mtime_ns, hashlib.sha256(fh.read()).hexdigest())
    return out


CASES = [
    ("out-file", ["--out", "{d}/afile"], "not a folder"),
    ("out-under-file", ["--out", "{d}/afile/s"], "is a file"),
    ("out-ro", ["--out", "{d}/ro/s"], "not writable"),
    ("out-sys", ["--out", "/sys/analogmed-search"], "not writable"),
    ("new-not-a-search-folder", ["--out", "{d}/notsearch", "--new"], "not a search folder"),
    ("batch-0", ["--out", "s", "--batch", "0"], "--batch 0"),
    ("workers-negative", ["--out", "s", "--workers", "-1"], "--workers -1"),
    ("workers-and-scheduler", ["--out", "s", "--workers", "2", "--scheduler", "x:1"], "not both"),
    ("scheduler-garbage", ["--out", "s", "--scheduler", "http://127.0.0.1:8786"], "protocol"),
    ("nasbench-missing", ["--out", "s", "FILE=lookup.toml"], "not found"),
    ("nasbench-other-task", ["--out", "s", "FILE=shipped.toml"], "has no task 'synthetic-2d'"),
]


@pytest.mark.parametrize("name, args, needle", CASES, ids=[c[0] for c in CASES])
def test_search_run_bad_input(fx, tmp_path, monkeypatch, capsys, name, args, needle):
    if "{d}/ro" in " ".join(args) and not fx["ro_ok"]:
        pytest.skip("cannot make a folder read-only here")
    import analogmed.search.run as run_mod

    def no_work(*a, **k):
        raise AssertionError("tasks were loaded before the input was checked")

    if name.startswith(("out-", "new-")):   # the output location is refused before any task is loaded
        monkeypatch.setattr(run_mod, "load_tasks", no_work)
    monkeypatch.chdir(tmp_path)
    d = fx["d"]
    file = str(d / "search.toml")
    rest = []
    for a in args:
        if a.startswith("FILE="):
            file = str(d / a[5:])
        else:
            rest.append(a.replace("{d}", str(d)))
    before = _snapshot(tmp_path, d)
    monkeypatch.setattr(sys, "argv", ["analogmed", "search", "run", file, "--no-plots", *rest])
    with pytest.raises(SystemExit) as exc:
        main()
    cap = capsys.readouterr()
    lines = [ln.split("\r")[-1] for ln in cap.err.splitlines()]
    lines = [ln for ln in lines if ln.strip() and "%|" not in ln]
    assert exc.value.code == 2, cap
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in cap.err, cap.err
    assert needle.lower() in lines[0].lower(), lines[0]
    assert _snapshot(tmp_path, d) == before
