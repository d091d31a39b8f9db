"""Bad input to ``analogmed search run``: exit 2, one line on stderr, nothing created or changed, and the
output location is checked before any work (no task is loaded, no supernet trained)."""
from __future__ import annotations

import sys

import pytest

from fsguard import set_readonly, snapshot

from analogmed.cli import main

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
    ok = set_readonly(ro, True)
    yield {"d": d, "ro_ok": ok}
    set_readonly(ro, False)




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
    before = snapshot(tmp_path, d)
    monkeypatch.setattr(sys, "argv", ["analogmed", "search", "run", file, "--no-plots", *rest])
    with pytest.raises(SystemExit) as exc:
        main()
    cap = capsys.readouterr()
    lines = [ln.split("\r")[-1] for ln in cap.err.splitlines()]
    lines = [ln for ln in lines if ln.strip() and "%|" not in ln]
    assert exc.value.code == 2, cap
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in cap.err, cap.err
    assert needle.lower() in lines[0].lower(), lines[0]
    assert snapshot(tmp_path, d) == before
