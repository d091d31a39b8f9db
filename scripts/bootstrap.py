"""Create/refresh the project's virtual environment on a CPU machine.

Installs, in order: the CPU build of torch 2.13.0 (it lies on this machine kind's disk; an
unpinned torch would pull a multi-GB CUDA build), every run-time dependency listed in
pyproject.toml except aihwkit, aihwkit itself *without* its build-only requirements
(cmake, scikit-build, pybind11, mypy, torchvision), then analogmed in editable mode.

Usage: python3 scripts/bootstrap.py VENV_DIR
"""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"
# aihwkit 1.1.0 ships a cp311 wheel; 1.2.x ships wheels for cp312-cp314 only. Binaries only, so
# pip never falls back to building an sdist.
AIHWKIT = {(3, 11): "aihwkit==1.1.0"}
AIHWKIT_DEFAULT = "aihwkit>=1.2,<1.3"


def run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / ".venv")
    if not (target / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True).create(target)
    py = str(target / "bin" / "python")
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [d for d in meta["dependencies"] if not d.startswith(("torch", "aihwkit"))]
    extras = meta["optional-dependencies"]["dask"] + meta["optional-dependencies"]["dev"]
    run(*pip, TORCH)
    # torch is pinned through a constraint so no dependency can swap it for a CUDA build.
    cons = target / "torch-constraint.txt"
    cons.write_text(TORCH + "\n")
    run(*pip, "-c", str(cons), *deps, *extras)
    ver = subprocess.run([py, "-c", "import sys; print(*sys.version_info[:2])"], check=True,
                         capture_output=True, text=True).stdout.split()
    aihwkit = AIHWKIT.get((int(ver[0]), int(ver[1])), AIHWKIT_DEFAULT)
    try:
        run(*pip, "--no-deps", "--only-binary=:all:", aihwkit)
    except subprocess.CalledProcessError:
        sys.exit(f"error: no binary wheel of {aihwkit} for Python {'.'.join(ver)}; use Python 3.11-3.14 "
                 "(aihwkit publishes wheels for cp311 (1.1.0) and cp312-cp314 (1.2.x)) or build aihwkit "
                 "from source (see the README, 'Install on other machines')")
    run(*pip, "--no-deps", "-e", str(ROOT))
    run(py, "-c", "import torch, aihwkit, monai, analogmed; print('torch', torch.__version__, "
        "'aihwkit', aihwkit.__version__, 'monai', monai.__version__)")


if __name__ == "__main__":
    main()
