"""CLI: demo/data/train --help, train writes a loadable checkpoint, bad input -> exit 2, one line."""
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from analogmed.cli import app, main
from analogmed.train import load_checkpoint

runner = CliRunner()


def run_main(monkeypatch, capsys, *args):
    """Run the console entry point (with its UserError wrapper) in-process."""
    monkeypatch.setattr(sys, "argv", ["analogmed", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr()


@pytest.mark.parametrize("cmd", [["demo"], ["data"], ["data", "list"], ["data", "show"], ["train"]])
def test_help(cmd):
    res = runner.invoke(app, [*cmd, "--help"])
    assert res.exit_code == 0 and "Usage" in res.output


def test_data_list_and_show():
    res = runner.invoke(app, ["data", "list"])
    assert res.exit_code == 0 and "mni152-tissue" in res.output and "chestxray14" in res.output
    res = runner.invoke(app, ["data", "show", "synthetic-2d", "-o", "size=32", "-o", "n_train=3"])
    assert res.exit_code == 0 and '"train": 3' in res.output


@pytest.mark.parametrize("args, needle", [
    (["data", "show", "brats"], "unknown task 'brats'; valid tasks:"),
    (["data", "show", "msd", "-o", "root=/nonexistent/Task02_Heart"], "does not exist"),
    (["data", "show", "synthetic-2d", "-o", "size"], "key=value"),
    (["train", "--task", "synthetic-2d", "--model", "resnet"], "unknown model 'resnet'"),
    (["train", "--task", "synthetic-2d", "--arch", "/nonexistent.json"], "does not exist"),
])
def test_bad_input_exit_2_one_line(monkeypatch, capsys, tmp_path, args, needle):
    code, out = run_main(monkeypatch, capsys, *args)
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in out.err


def test_train_writes_checkpoint_and_rejects_foreign_init(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pt"
    base = ["train", "--task", "synthetic-2d", "-o", "size=32", "-o", "n_train=4", "--epochs", "1",
            "--device", "cpu"]
    res = runner.invoke(app, [*base, "--model", "unet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(out)
    assert ck.spec["name"] == "unet" and ck.task_spec["name"] == "synthetic-2d" and ck.seed == 0
    # fine-tuning another model from it: one line, exit 2, nothing written
    code, cap = run_main(monkeypatch, capsys, *base, "--model", "basic-unet", "--init", str(out),
                         "--out", str(tmp_path / "b.pt"))
    assert code == 2 and len(cap.err.strip().splitlines()) == 1 and "does not match the model" in cap.err
    assert not (tmp_path / "b.pt").exists()
    (tmp_path / "junk.pt").write_text("junk")
    code, cap = run_main(monkeypatch, capsys, *base, "--init", str(tmp_path / "junk.pt"))
    assert code == 2 and "not an analogmed checkpoint" in cap.err


def test_console_script_bad_task_no_traceback():
    exe = [sys.executable, "-c", "from analogmed.cli import main; main()", "data", "show", "nope"]
    res = subprocess.run(exe, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: unknown task 'nope'; valid tasks: mni152-tissue, mni152-brainmask, synthetic-2d, synthetic-3d, "
        "msd, chestxray14"]
