"""Bad input over every command: exit 2, one line on stderr (no traceback), no new or changed file.

Each case runs the console entry point in-process (``analogmed.cli.main`` with ``sys.argv``) in a fresh
working folder; the folder and the shared fixtures are snapshotted (path, size, mtime, content hash)
before and after. Unwritable locations: ``/sys`` (a read-only file system) and a folder made read-only
(``chattr +i`` when running as root, whom permission bits do not stop; ``chmod`` otherwise).
"""
from __future__ import annotations

import errno
import http.server
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fsguard import set_readonly, snapshot

from analogmed.cli import main



# ------------------------------------------------------------------ fixtures


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Shared inputs: a tiny checkpoint, a finished tiny study, broken stores, odd files, loopback servers."""
    import torch

    from analogmed.data import get_task
    from analogmed.space.architecture import Architecture
    from analogmed.study.runner import run_study
    from analogmed.train import TrainConfig, save_checkpoint, train_model

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("fx")
    task = get_task("synthetic-2d", size=16, n_train=4, n_val=2, n_test=2, seed=0)
    arch = Architecture.from_label("C8-C16", spatial_dims=2, in_channels=1, out_channels=task.num_classes)
    ck = train_model({"family": "space", "arch": arch.to_dict()}, task,
                     TrainConfig(epochs=1, batch_size=2, device="cpu", progress=False, val_every=0))
    save_checkpoint(d / "model.pt", ck)
    (d / "arch.json").write_text(Architecture.from_label("C8-C16-C16").to_json())
    (d / "junk.pt").write_text("not a checkpoint")
    (d / "binary.json").write_bytes(bytes(range(256)) * 4)
    (d / "afile").write_text("a file\n")
    (d / "adir").mkdir()
    study = d / "study.toml"
    study.write_text(
        'name = "tiny"\nrepetitions = 1\npresets = ["pcm"]\ntimes_s = [1, 86400]\n'
        "[train]\nepochs = 1\nbatch_size = 2\naugment = false\n"
        '[[tasks]]\nname = "synthetic-2d"\nsize = 16\nn_train = 4\nn_val = 2\nn_test = 2\n'
        '[[models]]\narch = "C8-C16"\n')
    run_study(study, out=d / "done", progress=False)
    (d / "done" / "figures").mkdir()
    for name, body in (("missing-ckpt", f'checkpoint = "{d / "nope.pt"}"'),
                       ("junk-ckpt", f'checkpoint = "{d / "junk.pt"}"'),
                       ("deep-arch", 'arch = "C8-C8-C8-C8-C8"')):
        (d / f"{name}.toml").write_text(study.read_text().replace('name = "tiny"', f'name = "{name}"')
                                        .replace('arch = "C8-C16"', body))
    (d / "broken.toml").write_text("name = [unclosed\n")
    (d / "corrupt").mkdir()
    (d / "corrupt" / "results.sqlite").write_bytes(b"SQLite format 3\x00" + os.urandom(3000))
    (d / "garbage.sqlite").write_bytes(os.urandom(4096))
    con = sqlite3.connect(d / "foreign.sqlite")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    ro = d / "ro"
    ro.mkdir()
    (d / "rostore").mkdir()
    shutil.copy(d / "done" / "results.sqlite", d / "rostore" / "results.sqlite")
    ok = set_readonly(ro, True)
    ok_store = set_readonly(d / "rostore" / "results.sqlite", True)
    http_srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=http_srv.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (kernel backlog) and never answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    info = {"d": d, "ro_ok": ok and ok_store, "http": http_srv.server_address[1],
            "silent": silent.getsockname()[1], "closed": closed_port}
    yield info
    http_srv.shutdown()
    silent.close()
    set_readonly(ro, False)
    set_readonly(d / "rostore" / "results.sqlite", False)




def run_main(monkeypatch, capsys, args: list[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["analogmed", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def check_refused(monkeypatch, capsys, fx, work: Path, args: list[str], needle: str = "") -> str:
    """Run ``args``; assert exit 2, one line ``error: ...`` on stderr, and no file created or changed."""
    before = snapshot(work, fx["d"])
    code, out, err = run_main(monkeypatch, capsys, args)
    after = snapshot(work, fx["d"])
    lines = [ln.split("\r")[-1] for ln in err.splitlines()]  # progress bars (tqdm) are not messages
    lines = [ln for ln in lines if ln.strip() and not (" it/s" in ln or "s/it" in ln or "%|" in ln)]
    assert code == 2, (args, code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert needle.lower() in lines[0].lower(), (needle, lines[0])
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, (args, changed[:4])
    return lines[0]


# ------------------------------------------------------------------ the cases
# Placeholders: {d} the fixture folder, {ck} its checkpoint, {study} the tiny study, {db} its results,
# {ro} a read-only folder, {http} / {silent} / {closed}: loopback ports.
CK = ["-c", "{ck}"]
STUDY_FAST = ["--no-plots"]
CASES = [
    # --- output location, checked before the work: existing folder / under a file / unwritable / read-only
    ("train-out-dir", ["train", "--task", "synthetic-2d", "--out", "{d}/adir"], "existing folder"),
    ("train-out-under-file", ["train", "--task", "synthetic-2d", "--out", "{d}/afile/m.pt"], "is a file"),
    ("train-out-sys", ["train", "--task", "synthetic-2d", "--out", "/sys/analogmed/m.pt"], "not writable"),
    ("train-out-ro", ["train", "--task", "synthetic-2d", "--out", "{ro}/m.pt"], "not writable"),
    ("drift-out-file", ["drift", *CK, "--out", "{d}/afile"], "not a folder"),
    ("drift-out-under-file", ["drift", *CK, "--out", "{d}/afile/x"], "is a file"),
    ("drift-out-sys", ["drift", *CK, "--out", "/sys/analogmed-drift"], "not writable"),
    ("drift-out-ro", ["drift", *CK, "--out", "{ro}/x"], "not writable"),
    ("uq-out-file", ["uq", *CK, "--out", "{d}/afile"], "not a folder"),
    ("uq-out-under-file", ["uq", *CK, "--out", "{d}/afile/x"], "is a file"),
    ("uq-out-ro", ["uq", *CK, "--out", "{ro}"], "not writable"),
    ("demo-out-file", ["demo", "--out", "{d}/afile"], "not a folder"),
    ("demo-out-under-file", ["demo", "--out", "{d}/afile/x"], "is a file"),
    ("demo-out-ro", ["demo", "--out", "{ro}/demo"], "not writable"),
    ("arch-sample-under-file", ["arch", "sample", "--out", "{d}/afile/a.json"], "is a file"),
    ("arch-sample-out-dir", ["arch", "sample", "--out", "{d}/adir"], "existing folder"),
    ("arch-sample-many-file", ["arch", "sample", "--count", "2", "--out", "{d}/afile"], "not a folder"),
    ("arch-sample-ro", ["arch", "sample", "--out", "{ro}/a.json"], "not writable"),
    ("bench-json-dir", ["bench", "--json", "{d}/adir"], "existing folder"),
    ("bench-json-under-file", ["bench", "--json", "{d}/afile/b.json"], "is a file"),
    ("bench-json-ro", ["bench", "--json", "{ro}/b.json"], "not writable"),
    ("export-out-dir", ["study", "export", "{db}", "-o", "{d}/adir"], "existing folder"),
    ("export-out-under-file", ["study", "export", "{db}", "-o", "{d}/afile/x.csv"], "is a file"),
    ("export-out-ro", ["study", "export", "{db}", "-o", "{ro}/x.csv"], "not writable"),
    ("export-out-format", ["study", "export", "{db}", "-o", "x.txt"], "unknown format"),
    ("plot-out-file", ["plot", "{db}", "--out", "{d}/afile"], "not a folder"),
    ("plot-out-under-file", ["plot", "{db}", "--out", "{d}/afile/figs"], "is a file"),
    ("plot-out-ro", ["plot", "{db}", "--out", "{ro}/figs"], "not writable"),
    ("supernet-train-out-dir", ["supernet", "train", "--task", "synthetic-2d", "--out", "{d}/adir"], "existing folder"),
    ("supernet-subnet-under-file", ["supernet", "subnet", "--arch", "{d}/arch.json", "--out", "{d}/afile/s.pt"],
     "is a file"),
    ("lut-build-out-file", ["lut", "build", "--out", "{d}/afile"], "not a folder"),
    ("lut-check-json-dir", ["lut", "check", "--json", "{d}/adir"], "existing folder"),
    ("study-run-out-file", ["study", "run", "{study}", "--out", "{d}/afile", *STUDY_FAST], "not a folder"),
    ("study-run-out-ro", ["study", "run", "{study}", "--out", "{ro}/s", *STUDY_FAST], "not writable"),
    ("mednasbench-out-file", ["arch", "mednasbench", "{d}/arch.json", "--out", "{d}/afile"], "not a folder"),
    # --- corrupted, foreign or read-only results stores
    ("status-corrupt", ["study", "status", "{d}/corrupt"], "damaged"),
    ("status-garbage", ["study", "status", "{d}/garbage.sqlite"], "damaged"),
    ("status-foreign", ["study", "status", "{d}/foreign.sqlite"], "not a study's results store"),
    ("status-missing", ["study", "status", "{d}/adir"], "not found"),
    ("export-corrupt", ["study", "export", "{d}/corrupt", "-o", "x.csv"], "damaged"),
    ("plot-corrupt", ["plot", "{d}/corrupt/results.sqlite", "--out", "figs"], "damaged"),
    ("run-corrupt", ["study", "run", "{study}", "--out", "{d}/corrupt", *STUDY_FAST], "damaged"),
    ("run-ro-folder", ["study", "run", "{study}", "--out", "{ro}", *STUDY_FAST], "not writable"),
    ("run-ro-store", ["study", "run", "{study}", "--out", "{d}/rostore", *STUDY_FAST], "read-only"),
    ("plot-ro-store-default-out", ["plot", "{d}/rostore/results.sqlite", "--out", "{ro}/f"], "not writable"),
    # --- Dask scheduler addresses (loopback only)
    ("scheduler-garbage", ["study", "run", "{study}", "--scheduler", "garbage", *STUDY_FAST], "scheduler"),
    ("scheduler-bad-port", ["study", "run", "{study}", "--scheduler", "tcp://127.0.0.1:http", *STUDY_FAST],
     "port"),
    ("scheduler-port-range", ["study", "run", "{study}", "--scheduler", "tcp://127.0.0.1:99999", *STUDY_FAST],
     "port"),
    ("scheduler-scheme", ["study", "run", "{study}", "--scheduler", "http://127.0.0.1:8786", *STUDY_FAST],
     "protocol"),
    ("scheduler-http", ["study", "run", "{study}", "--scheduler", "tcp://127.0.0.1:{http}", *STUDY_FAST],
     "not a Dask scheduler"),
    ("scheduler-silent", ["study", "run", "{study}", "--scheduler", "127.0.0.1:{silent}", *STUDY_FAST],
     "not a Dask scheduler"),
    ("scheduler-closed", ["study", "run", "{study}", "--scheduler", "tcp://127.0.0.1:{closed}", *STUDY_FAST],
     "unreachable"),
    ("workers-negative", ["study", "run", "{study}", "--workers", "-1", *STUDY_FAST], "--workers -1"),
    ("workers-and-scheduler", ["study", "run", "{study}", "--workers", "2", "--scheduler", "x:1", *STUDY_FAST],
     "not both"),
    # --- the whole study validated before any work
    ("study-missing-ckpt", ["study", "run", "{d}/missing-ckpt.toml", *STUDY_FAST], "not found"),
    ("study-junk-ckpt", ["study", "run", "{d}/junk-ckpt.toml", *STUDY_FAST], "not an analogmed checkpoint"),
    ("study-deep-arch", ["study", "run", "{d}/deep-arch.toml", *STUDY_FAST], "depth"),
    ("study-missing-file", ["study", "run", "{d}/nope.toml", *STUDY_FAST], "not found"),
    ("study-broken-toml", ["study", "run", "{d}/broken.toml", *STUDY_FAST], "malformed TOML"),
    # --- values
    ("mednasbench-binary", ["arch", "mednasbench", "{d}/binary.json"], "binary.json"),
    ("cost-17x17", ["cost", "--arch", "{d}/arch.json", "--input-size", "17x17"], "multiple of 4"),
    ("cost-size-junk", ["cost", "--arch", "{d}/arch.json", "--input-size", "17x"], "input-size"),
    ("data-show-msd-no-root", ["data", "show", "msd"], "root"),
    ("uq-times-empty", ["uq", *CK, "--times", "", "--out", "uqout"], "--times"),
    ("uq-times-junk", ["uq", *CK, "--times", "soon", "--out", "uqout"], "--times"),
    ("uq-samples-1", ["uq", *CK, "--samples", "1", "--out", "uqout"], "samples"),
    ("lut-build-repeats-0", ["lut", "build", "--repeats", "0", "--out", "lut"], "--repeats 0"),
    ("lut-build-threads-0", ["lut", "build", "--threads", "0", "--out", "lut"], "--threads 0"),
    ("lut-check-candidates-0", ["lut", "check", "--candidates", "0"], "--candidates 0"),
    ("train-lr-inf", ["train", "--task", "synthetic-2d", "--lr", "inf", "--out", "m.pt"], "--lr inf"),
    ("train-lr-nan", ["train", "--task", "synthetic-2d", "--lr", "nan", "--out", "m.pt"], "--lr nan"),
    ("train-lr-negative", ["train", "--task", "synthetic-2d", "--lr", "-1", "--out", "m.pt"], "--lr -1"),
    ("train-hwa-lr-inf", ["train", "--task", "synthetic-2d", "--hwa", "--hwa-lr", "inf", "--out", "m.pt"],
     "--hwa-lr inf"),
    ("drift-months-huge", ["drift", *CK, "--months", "1000000000000", "--out", "dr"], "--months"),
    ("drift-months-0", ["drift", *CK, "--months", "0", "--out", "dr"], "--months 0"),
    ("drift-repeats-0", ["drift", *CK, "--repeats", "0", "--out", "dr"], "--repeats 0"),
    ("drift-junk-ckpt", ["drift", "-c", "{d}/junk.pt", "--out", "dr"], "not an analogmed checkpoint"),
    ("drift-times-negative", ["drift", *CK, "--times", "1,-5", "--out", "dr"], "-5"),
    ("demo-repeats-0", ["demo", "--repeats", "0", "--out", "demo"], "--repeats 0"),
    ("demo-lr-inf", ["demo", "--lr", "inf", "--out", "demo"], "--lr inf"),
    ("supernet-lr-inf", ["supernet", "train", "--task", "synthetic-2d", "--lr", "inf", "--out", "s.pt"], "--lr inf"),
    ("bench-threads-0", ["bench", "--threads", "0", "--json", "b.json"], "--threads"),
    ("arch-sample-count-0", ["arch", "sample", "--count", "0", "--out", "a"], "--count"),
    ("arch-show-bad-label", ["arch", "show", "Q9-Z"], "neither"),
    ("arch-validate-junk", ["arch", "validate", "{d}/junk.pt"], "junk.pt"),
    ("drift-engine-junk", ["drift", *CK, "--engine", "warp", "--out", "dr"], "warp"),
    ("uq-variation-junk", ["uq", *CK, "--variation", "sometimes", "--out", "uqout"], "sometimes"),
    # --- search
    ("search-out-file", ["search", "run", "{search}", "--out", "{d}/afile", "--no-plots"], "afile"),
    ("search-out-under-file", ["search", "run", "{search}", "--out", "{d}/afile/s", "--no-plots"], "afile"),
    ("search-missing-file", ["search", "run", "{d}/nope.toml"], "not found"),
    ("search-show-missing", ["search", "show", "{d}/nope"], "does not exist"),
]


def _fill(args: list[str], fx) -> list[str]:
    d = fx["d"]
    m = {"{d}": str(d), "{ck}": str(d / "model.pt"), "{study}": str(d / "study.toml"),
         "{db}": str(d / "done" / "results.sqlite"), "{ro}": str(d / "ro"), "{http}": str(fx["http"]),
         "{silent}": str(fx["silent"]), "{closed}": str(fx["closed"]),
         "{search}": str(Path(__file__).resolve().parents[1] / "studies" / "search-mni152.toml")}
    out = []
    for a in args:
        for k, v in m.items():
            a = a.replace(k, v)
        out.append(a)
    return out


@pytest.mark.parametrize("name, args, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input(fx, tmp_path, monkeypatch, capsys, name, args, needle):
    if ("{ro}" in " ".join(args) or "rostore" in " ".join(args)) and not fx["ro_ok"]:
        pytest.skip("cannot make a folder read-only here")
    monkeypatch.setattr("analogmed.study.executors.CONNECT_TIMEOUT_S", 2.0)
    monkeypatch.chdir(tmp_path)
    check_refused(monkeypatch, capsys, fx, tmp_path, _fill(args, fx), needle)


def test_case_count():
    assert len(CASES) >= 60


# ------------------------------------------------------------------ beyond argument checks
def test_read_only_store_can_still_be_read(fx, tmp_path, monkeypatch, capsys):
    """status and export only read: a read-only results.sqlite works for them."""
    if not fx["ro_ok"]:
        pytest.skip("cannot make a file read-only here")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(monkeypatch, capsys, ["study", "status", str(fx["d"] / "rostore" / "results.sqlite")])
    assert code in (0, None) and "study tiny" in out and "rows" in out, err
    code, out, err = run_main(monkeypatch, capsys, ["study", "export", str(fx["d"] / "rostore" / "results.sqlite"),
                                                    "-o", "t.csv"])
    assert code in (0, None) and (tmp_path / "t.csv").stat().st_size > 100


def test_second_run_of_a_study_refuses_while_the_first_holds_the_lock(fx, tmp_path, monkeypatch, capsys):
    from analogmed.study.store import StudyLock

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "s"
    with StudyLock(out, "tiny"):
        line = check_refused(monkeypatch, capsys, fx, tmp_path,
                             ["study", "run", str(fx["d"] / "study.toml"), "--out", str(out), "--no-plots"],
                             "already running")
    assert str(out) in line


def test_full_disk_leaves_no_partial_output_set(fx, tmp_path, monkeypatch, capsys):
    """The figures fail to write after drift.csv and summary.csv were written: none of them is left."""
    import matplotlib.figure

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    monkeypatch.chdir(tmp_path)
    line = check_refused(monkeypatch, capsys, fx, tmp_path,
                         ["drift", "-c", str(fx["d"] / "model.pt"), "--times", "1,86400", "--repeats", "1",
                          "--out", "dr"], "free disk space")
    assert "dr" in line and not (tmp_path / "dr").exists()


def test_diverging_training_saves_nothing(fx, tmp_path, monkeypatch, capsys):
    """A finite but absurd learning rate makes the weights non-finite: refused, no checkpoint written."""
    monkeypatch.chdir(tmp_path)
    check_refused(monkeypatch, capsys, fx, tmp_path,
                  ["train", "--task", "synthetic-2d", "-o", "size=16", "-o", "n_train=4", "--model", "space",
                   "--arch", "C8-C16", "--epochs", "3", "--batch-size", "2", "--lr", "1e30", "--no-augment",
                   "--device", "cpu", "--out", "m.pt"], "lower the learning rate")


def test_save_checkpoint_refuses_nonfinite_weights(fx, tmp_path):
    import torch

    from analogmed.errors import UserError
    from analogmed.train import load_checkpoint, save_checkpoint

    ck = load_checkpoint(fx["d"] / "model.pt")
    with torch.no_grad():
        next(ck.model.parameters()).fill_(float("nan"))
    with pytest.raises(UserError, match="NaN/inf"):
        save_checkpoint(tmp_path / "m.pt", ck)
    assert list(tmp_path.iterdir()) == []


def test_output_files_respect_the_umask(tmp_path):
    from analogmed.io import output_set, write_text_atomic

    old = os.umask(0o022)
    try:
        p = write_text_atomic(tmp_path / "a.txt", "x")
        with output_set(tmp_path / "set") as stage:
            write_text_atomic(stage / "b.txt", "y")
        os.umask(0o077)
        q = write_text_atomic(tmp_path / "c.txt", "z")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "set" / "b.txt").stat().st_mode & 0o777 == 0o644
    assert q.stat().st_mode & 0o777 == 0o600
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt", "c.txt", "set"]


def test_output_set_into_existing_folder_keeps_other_files_and_is_all_or_nothing(tmp_path):
    from analogmed.errors import UserError
    from analogmed.io import output_set, write_text_atomic

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    (out / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with output_set(out) as stage:
            write_text_atomic(stage / "a.txt", "new")
            raise RuntimeError("figure failed")
    assert (out / "a.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with output_set(out) as stage:
        write_text_atomic(stage / "a.txt", "new")
    assert (out / "a.txt").read_text() == "new" and (out / "keep.txt").read_text() == "keep"
    with pytest.raises(UserError, match="is a file"):
        with output_set(tmp_path / "out" / "keep.txt" / "x"):
            pass


def test_console_script_subprocess_bad_output(fx, tmp_path):
    """The real console entry point (a separate process): one line, exit 2, nothing written."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    exe = [sys.executable, "-c", "from analogmed.cli import main; main()"]
    args = ["drift", "-c", str(fx["d"] / "model.pt"), "--out", str(fx["d"] / "afile" / "x")]
    res = subprocess.run(exe + args, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "afile is a file" in lines[0]
    assert list(tmp_path.iterdir()) == []
