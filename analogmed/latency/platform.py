"""Digital platforms: one TOML spec each in ``digital/`` (cores, clock, SIMD, memory, power, sources).

A platform is named by its file stem (``raspberry-pi3`` -> ``digital/raspberry-pi3.toml``) or given
as a path to a TOML file. Its latency lookup table lives beside it (``<name>.csv``).
:func:`profile_host` writes the spec of the machine it runs on (read from ``/proc/cpuinfo`` and
``lscpu``, memory bandwidth measured with a large copy); ``analogmed lut build`` calls it.

Schema (every key is checked; unknown keys are an error)::

    name = "raspberry-pi3"          # file stem
    description = "..."
    cpu_model = "..."
    cores = 4                       # physical cores
    threads = 4                     # torch threads used for timing and for the analytical model
    clock_ghz = 1.2                 # sustained clock, GHz
    simd = "NEON"                   # instruction set used for fp32 math
    simd_width_bits = 128
    fp32_flops_per_cycle = 8        # per core (FMA counts 2)
    memory_gb = 1.0
    memory_type = "LPDDR2-900"
    bandwidth_gbs = 3.6             # DRAM bandwidth, GB/s
    typical_power_w = 3.95          # power while running inference, W (energy mJ = ms x W)
    [sources]                       # where every figure comes from (free text per key)
"""
from __future__ import annotations

import datetime as _dt
import os
import platform as _pyplatform
import re
import subprocess
import time
import tomllib
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from analogmed.errors import UserError
from analogmed.io import write_text_atomic
from analogmed.paths import data_dir


class Platform(BaseModel):
    """A digital platform spec (see the module docstring for units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    cpu_model: str
    cores: int = Field(gt=0)
    threads: int = Field(gt=0)
    clock_ghz: float = Field(gt=0)
    simd: str = ""
    simd_width_bits: int = Field(gt=0)
    fp32_flops_per_cycle: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    memory_type: str = ""
    bandwidth_gbs: float = Field(gt=0)
    typical_power_w: float = Field(gt=0)
    sources: dict[str, str] = Field(default_factory=dict)

    @property
    def peak_gflops(self) -> float:
        """fp32 peak of the cores torch uses, GFLOP/s = threads x clock x FLOP/cycle."""
        return min(self.threads, self.cores) * self.clock_ghz * self.fp32_flops_per_cycle


def platforms_dir() -> Path:
    """The shipped ``digital/`` folder."""
    return data_dir("digital")


def list_platforms() -> list[str]:
    """Names of the platforms shipped in ``digital/``."""
    return sorted(p.stem for p in platforms_dir().glob("*.toml"))


def platform_path(name_or_path: str | os.PathLike) -> Path:
    """Resolve a platform name (``digital/<name>.toml``) or a path to a TOML file."""
    s = str(name_or_path)
    if s.endswith(".toml") or os.sep in s:
        p = Path(s)
        if not p.is_file():
            raise UserError(f"platform file {s} not found; give an existing TOML or one of {list_platforms()}")
        return p
    p = platforms_dir() / f"{s}.toml"
    if not p.is_file():
        raise UserError(
            f"unknown platform {s!r}; choose one of {list_platforms()} "
            f"(or profile this machine with `analogmed lut build --platform host`)"
        )
    return p


def load_platform(name_or_path: str | os.PathLike) -> Platform:
    """Load and validate a platform spec; bad or unknown keys raise :class:`UserError`."""
    path = platform_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"platform file {path} is not valid TOML ({exc}); fix the syntax") from None
    try:
        return Platform(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise UserError(f"platform file {path}: key {loc!r}: {err['msg']}; fix or remove it") from None


def lut_path(platform: Platform | str, folder: Path | None = None) -> Path:
    """Where the latency table of ``platform`` lives (``<folder or digital/>/<name>.csv``)."""
    name = platform.name if isinstance(platform, Platform) else str(platform)
    return (folder or platforms_dir()) / f"{name}.csv"


def platform_lut_path(name_or_path: str | os.PathLike) -> Path:
    """The LUT of a platform given by name (``digital/<name>.csv``) or TOML path (the CSV beside it)."""
    path = platform_path(name_or_path)
    return path.with_suffix(".csv")


def save_platform(plat: Platform, path: str | os.PathLike) -> Path:
    """Write ``plat`` as TOML (atomically)."""
    data = plat.model_dump()
    return write_text_atomic(path, tomli_w.dumps(data))


# ---------------------------------------------------------------- host profiling


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info.setdefault(k.strip(), v.strip())
    return info


def _simd(flags: set[str], vendor: str, family: int | None) -> tuple[str, int, float]:
    """(simd name, register width bits, fp32 FLOP/cycle/core) from CPU flags.

    Heuristic: two FMA pipes per core of the widest datapath; AMD Zen 4 (family 0x19) runs AVX-512
    on 256-bit pipes (32 FLOP/cycle), Intel server cores with AVX-512 have two 512-bit FMA units.
    """
    if "avx512f" in flags:
        if "AMD" in vendor:
            return "AVX-512 (on 256-bit FMA pipes)", 512, 32.0
        return "AVX-512", 512, 64.0
    if "avx2" in flags and "fma" in flags:
        return "AVX2 + FMA3", 256, 32.0
    if "avx" in flags:
        return "AVX", 256, 16.0
    if "asimd" in flags or "neon" in flags:
        return "NEON", 128, 8.0
    return "SSE2", 128, 8.0


def measure_bandwidth_gbs(size_mb: int = 256, repeats: int = 5) -> float:
    """DRAM copy bandwidth in GB/s (read + write bytes / median time of a large ``numpy`` copy)."""
    import numpy as np

    n = size_mb * 1024 * 1024 // 4
    a = np.ones(n, dtype=np.float32)
    b = np.empty_like(a)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        np.copyto(b, a)
        times.append(time.perf_counter() - t0)
    t = sorted(times[1:])[len(times[1:]) // 2]
    return round(2 * a.nbytes / t / 1e9, 2)


def host_matches(plat: Platform) -> bool:
    """Whether this machine can be the device ``plat`` describes (ISA and, on x86, CPU model)."""
    arch = _pyplatform.machine().lower()
    is_arm = arch.startswith(("aarch64", "arm"))
    if plat.simd.upper().startswith("NEON"):
        return is_arm
    if is_arm:
        return False
    token = plat.cpu_model.split()[-1].lower()
    host_model = (_cpuinfo().get("model name") or _lscpu().get("Model name", "")).lower()
    return token in host_model


def profile_host(name: str = "this-machine", threads: int | None = None,
                 typical_power_w: float | None = None) -> Platform:
    """Describe the machine this runs on as a :class:`Platform`.

    Args:
        name: platform name (file stem) to give it.
        threads: torch threads the LUT is timed with (default: ``torch.get_num_threads()``).
        typical_power_w: power while running inference, W. A VM cannot read it; the default is an
            estimate of 4 W per thread (server core share of package TDP), marked as such in sources.
    """
    import torch

    cpu = _cpuinfo()
    ls = _lscpu()
    flags = set((cpu.get("flags") or cpu.get("Features") or ls.get("Flags", "")).split())
    vendor = cpu.get("vendor_id", ls.get("Vendor ID", ""))
    try:
        family = int(cpu.get("cpu family", ls.get("CPU family", "")))
    except ValueError:
        family = None
    model_name = cpu.get("model name") or ls.get("Model name") or _pyplatform.processor() or "unknown CPU"
    cores = os.cpu_count() or 1
    try:
        per_socket = int(ls.get("Core(s) per socket", "0"))
        sockets = int(ls.get("Socket(s)", "1"))
        if per_socket:
            cores = per_socket * sockets
    except ValueError:
        pass
    mhz = None
    for key in ("CPU max MHz", "CPU MHz"):
        if ls.get(key):
            try:
                mhz = float(ls[key])
                break
            except ValueError:
                pass
    if mhz is None:
        try:
            mhz = float(cpu.get("cpu MHz", "0")) or None
        except ValueError:
            mhz = None
    if mhz is None:  # e.g. "AMD EPYC 7B13 @ 2.45GHz"
        m = re.search(r"([0-9.]+)\s*GHz", model_name)
        mhz = float(m.group(1)) * 1000 if m else 2000.0
    simd, width, fpc = _simd(flags, vendor, family)
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    threads = int(threads or torch.get_num_threads())
    bw = measure_bandwidth_gbs()
    power_src = "given by the user"
    if typical_power_w is None:
        typical_power_w = 4.0 * threads
        power_src = ("estimate: 4 W per busy core (server CPUs: ~3.75 W per core of package TDP, e.g. "
                     "360 W / 96 cores); a VM cannot read RAPL. Override with --power-w")
    today = _dt.date.today().isoformat()
    return Platform(
        name=name,
        description=f"profiled by `analogmed lut build` on {today} ({_pyplatform.node()})",
        cpu_model=model_name,
        cores=cores,
        threads=threads,
        clock_ghz=round(mhz / 1000, 3),
        simd=simd,
        simd_width_bits=width,
        fp32_flops_per_cycle=fpc,
        memory_gb=mem_gb or 1.0,
        memory_type="unknown (profiled host)",
        bandwidth_gbs=bw,
        typical_power_w=float(typical_power_w),
        sources={
            "cpu": "/proc/cpuinfo and lscpu (cores, clock, flags)",
            "simd": "CPU flags; FLOP/cycle assumes two FMA pipes of the native width "
                    "(AMD AVX-512 on 256-bit pipes)",
            "bandwidth": f"measured: median numpy copy of 256 MB, read+write bytes ({today})",
            "power": power_src,
        },
    )
