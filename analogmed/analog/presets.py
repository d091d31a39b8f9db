"""Analog hardware presets: one TOML file -> one aihwkit ``TorchInferenceRPUConfig``.

A preset is the single source of every device number the simulation uses. Shipped presets live in
``hardware/`` (``analogmed.paths.data_dir("hardware")``); ``load_preset`` also takes a path to a user's
TOML. The schema (every table optional except ``[device]``; unknown keys are errors) is documented in
``hardware/README.md``::

    name = "pcm"                       # defaults to the file stem
    description = "..."
    [device]       noise_model = "pcm" | "reram" | "reram-wan2022" | "hermes" | "none", g_max_us,
                   prog/read/drift scales
    [drift_compensation] kind = "global" | "none"
    [forward]      is_perfect, inp_res_bits, out_res_bits, out_noise, inp_bound, out_bound,
                   bound_management, noise_management
    [input_range]  enable, calibrate = "none" | "max" | "cache_quantile" | "moving_std", quantile, batches,
                   init_value (the range when calibrate = "none"), adc_headroom / adc_headroom_quantile
                   (widen the ranges of layers whose raw outputs would saturate the ADC)
    [mapping]      tile_rows (crossbar inputs), tile_cols (crossbar outputs), digital_bias,
                   weight_scaling_omega, weight_scaling_columnwise, out_scaling_columnwise
    [training]     the hardware-aware training recipe: injected noise, clipping, remapping, input ranges
                   (learned: init and decay; or calibrated after training), optimiser, schedule,
                   BatchNorm handling and checkpoint selection (see :class:`TrainingSection`)

Shipped: ``pcm`` (our PCM choices: column-wise weight scaling, calibrated input ranges, our HWA recipe),
``analognas`` (IBM AnalogNAS-Bench's settings exactly, ``analognasbench/training_script.py``), ``pcm-nocomp``,
``reram``, ``hermes``, ``ideal``.
"""
from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from analogmed.errors import UserError
from analogmed.paths import data_dir


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceSection(_Strict):
    """The conductance device: which aihwkit noise model programs and drifts the weights."""

    noise_model: Literal["pcm", "reram", "reram-wan2022", "hermes", "none"]
    g_max_us: float | None = Field(None, gt=0, description="max conductance (uS); None = model default")
    prog_noise_scale: float = Field(1.0, ge=0)
    read_noise_scale: float = Field(1.0, ge=0)
    drift_scale: float = Field(1.0, ge=0)
    num_devices: Literal[1, 2] = 2  # HERMES only: devices per weight (2 = MSF programming)


class DriftCompensationSection(_Strict):
    kind: Literal["global", "none"] = "global"


class ForwardSection(_Strict):
    """Peripheral (DAC/ADC) settings of one analog MVM."""

    is_perfect: bool = False
    inp_res_bits: int = Field(8, ge=1, le=24, description="DAC resolution; step = 1 / (2**bits - 2)")
    out_res_bits: int = Field(8, ge=1, le=24, description="ADC resolution; step = 1 / (2**bits - 2)")
    out_noise: float = Field(0.04, ge=0)
    inp_bound: float = Field(1.0, gt=0)
    out_bound: float = Field(10.0, gt=0)
    bound_management: Literal["none", "iterative"] = "none"
    noise_management: Literal["none", "abs_max"] = "none"


class InputRangeSection(_Strict):
    """Static input ranges (the DAC's full-scale value per tile), calibrated after conversion."""

    enable: bool = True
    calibrate: Literal["none", "max", "cache_quantile", "moving_std"] = "cache_quantile"
    quantile: float = Field(0.995, gt=0, le=1)
    batches: int = Field(4, ge=1, description="training batches used for calibration")
    init_value: float = Field(3.0, gt=0, description="range of every tile when calibrate = none (aihwkit init_value)")
    adc_headroom: float = Field(0.0, ge=0, le=1, description="> 0: after the ranges are set (calibrated or learned), "
                                "widen the ranges of every layer whose raw outputs' adc_headroom_quantile exceeds "
                                "adc_headroom * out_bound (analogmed.analog.convert.adc_headroom); 0: off")
    adc_headroom_quantile: float = Field(0.999, gt=0, le=1)


class MappingSection(_Strict):
    tile_rows: int = Field(512, ge=1, description="crossbar rows = inputs per tile")
    tile_cols: int = Field(512, ge=1, description="crossbar columns = outputs per tile")
    digital_bias: bool = True
    weight_scaling_omega: float = Field(1.0, ge=0)
    weight_scaling_columnwise: bool = True
    out_scaling_columnwise: bool = False


class TrainingSection(_Strict):
    """Hardware-aware training recipe (``analogmed train --hwa``): the noise injected while training, the
    post-update steps (clip, remap), the input ranges, the optimiser and schedule, and how the kept
    checkpoint is chosen. docs/hwa.md gives the measured effect of each knob."""

    # --- what the tiles do in training (aihwkit rpu_config.modifier / clip / remap) ---------------
    weight_noise_type: Literal["add_normal", "mult_normal", "preset", "none"] = Field(
        "add_normal", description="preset: a fresh programmed instance of this preset's device model at "
        "noise_time_s at every training forward (analogmed.analog.hwa_noise)")
    weight_noise: float = Field(0.06, ge=0, description="std of the injected weight noise (relative to max |w|)")
    noise_time_s: float = Field(86_400.0, ge=0, description="preset noise: drift time of the sampled instances (s)")
    noise_time_min_s: float = Field(0.0, ge=0, description="preset noise: > 0: every training step draws one drift "
                                    "time for the whole network, log-uniform in [noise_time_min_s, noise_time_s] "
                                    "(s); 0: always noise_time_s")
    noise_compensation: Literal["weights", "output"] = Field(
        "weights", description="preset noise: where the global drift compensation of the training instances is "
        "applied: 'weights' rescales the drifted weights before the MVM (the ADC sees undrifted magnitudes), "
        "'output' multiplies the tile output after the ADC, as GlobalDriftCompensation does at inference")
    clip_type: Literal["fixed_value", "layer_gaussian", "none"] = "fixed_value"
    clip_fixed_value: float = Field(1.0, description="fixed_value clip bound; with layer_gaussian a cap on "
                                    "sigma * std(w) when > 0 (<= 0: no cap, aihwkit's default -1)")
    clip_sigma: float = Field(2.5, gt=0)
    remap: Literal["layerwise", "channelwise", "none"] = "channelwise"
    # --- input ranges (aihwkit rpu_config.pre_post.input_range) ---------------------------------
    learn_input_range: bool = True
    range_init: Literal["data", "inference"] = Field(
        "data", description="initial learned input ranges: 'data' = aihwkit's init from the first "
        "input_range_init_from_data training batches; 'inference' = the ranges this preset's inference uses for "
        "the digital checkpoint (calibrated per [input_range], widened by its adc_headroom when set)")
    range_headroom: float = Field(0.0, ge=0, le=1, description="range_init = 'inference': > 0 widens the start "
                                  "ranges of layers whose raw outputs would saturate the ADC, as [input_range] "
                                  "adc_headroom with this fill (also when the inference preset has none); 0: off")
    input_range_init: float = Field(3.0, gt=0, description="aihwkit init_value")
    input_range_init_from_data: int = Field(10, ge=0, description="batches that set the initial range")
    input_range_init_std_alpha: float = Field(3.0, gt=0, description="initial range = alpha * std(input)")
    input_range_decay: float = Field(0.001, ge=0, description="range shrinkage per step (aihwkit decay)")
    input_min_percentage: float = Field(0.95, gt=0, le=1, description="inputs that must stay unclipped")
    manage_output_clipping: bool = False
    ranges: Literal["learned", "calibrated"] = Field(
        "learned", description="inference input ranges of the trained network: the learned ones, or "
        "re-calibrated after training (the preset's [input_range] calibration)")
    # --- optimiser and schedule ------------------------------------------------------------------
    start: Literal["finetune", "scratch"] = Field(
        "finetune", description="fine-tune the digital checkpoint, or train the analog model from its init")
    epochs: int = Field(20, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1, description="sgd only")
    nesterov: bool = False
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = Field(0, ge=0, description="linear lr warm-up (epochs)")
    batchnorm: Literal["train", "freeze"] = Field(
        "train", description="BatchNorm statistics: updated in training, or frozen at the digital values")
    # --- which weights are kept --------------------------------------------------------------------
    select: Literal["analog", "training", "last"] = Field(
        "training", description="analog: best mean score of programmed instances of this preset at "
        "select_time_s; training: best validation score of the training-noise model; last: the final weights")
    select_every: int = Field(0, ge=0, description="epochs between selections (0 = epochs // 4, at least 1)")
    select_instances: int = Field(3, ge=1, description="programmed instances per analog selection")
    select_time_s: float = Field(86_400.0, ge=0, description="drift time of the analog selection (s)")
    select_times_s: tuple[float, ...] = Field(
        (), description="analog selection at several drift times (s): the mean score over "
        "these times and the instances; empty: select_time_s alone")


class PresetFile(_Strict):
    name: str | None = None
    description: str = ""
    device: DeviceSection
    drift_compensation: DriftCompensationSection = DriftCompensationSection()
    forward: ForwardSection = ForwardSection()
    input_range: InputRangeSection = InputRangeSection()
    mapping: MappingSection = MappingSection()
    training: TrainingSection = TrainingSection()


@dataclass(frozen=True)
class Preset:
    """A validated hardware preset. ``rpu_config()`` builds a fresh aihwkit config every call."""

    name: str
    path: Path
    spec: PresetFile

    # --- the numbers other parts read directly -------------------------------------------------
    @property
    def tile_rows(self) -> int:
        """Crossbar rows (inputs) per tile."""
        return self.spec.mapping.tile_rows

    @property
    def tile_cols(self) -> int:
        """Crossbar columns (outputs) per tile."""
        return self.spec.mapping.tile_cols

    @property
    def has_noise_model(self) -> bool:
        """False for the ideal preset (nothing to be robust against)."""
        return self.spec.device.noise_model != "none"

    @property
    def is_ideal(self) -> bool:
        return not self.has_noise_model and self.spec.forward.is_perfect

    def check_times(self, times_s) -> None:
        """UserError if the device model cannot drift to one of ``times_s`` (aihwkit's Wan-2022 ReRAM
        model only has coefficients for t = 1 s, 1 d and 2 d)."""
        allowed = getattr(self.noise_model(), "coeff_dic", None)
        if allowed:
            ok = {float(a) for a in allowed}
            bad = [float(t) for t in times_s if float(t) not in ok]
            if bad:
                raise UserError(f"preset {self.name} only drifts to t in {sorted(ok)} s, not {bad[0]:g} s; "
                                "use those times, or a preset whose model drifts at any t (e.g. reram, pcm)")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the preset (recorded next to results and in checkpoints)."""
        return {"name": self.name, **self.spec.model_dump(mode="json", exclude={"name"})}

    # --- aihwkit ---------------------------------------------------------------------------------
    def noise_model(self):
        """The aihwkit noise model (programming noise, drift, read noise) of the device."""
        from aihwkit.inference import PCMLikeNoiseModel
        from aihwkit.inference.noise.hermes import HermesNoiseModel
        from aihwkit.inference.noise.reram import ReRamCMONoiseModel, ReRamWan2022NoiseModel

        d = self.spec.device
        if d.noise_model == "pcm":
            return PCMLikeNoiseModel(g_max=d.g_max_us or 25.0, prog_noise_scale=d.prog_noise_scale,
                                     read_noise_scale=d.read_noise_scale, drift_scale=d.drift_scale)
        if d.noise_model == "hermes":
            return HermesNoiseModel(num_devices=d.num_devices, g_max=d.g_max_us,
                                    prog_noise_scale=d.prog_noise_scale,
                                    read_noise_scale=d.read_noise_scale, drift_scale=d.drift_scale)
        if d.noise_model == "reram":
            kw = {"g_max": d.g_max_us} if d.g_max_us else {}
            return ReRamCMONoiseModel(prog_noise_scale=d.prog_noise_scale, read_noise_scale=d.read_noise_scale,
                                      drift_scale=d.drift_scale, **kw)
        if d.noise_model == "reram-wan2022":
            kw = {"g_max": d.g_max_us} if d.g_max_us else {}
            return ReRamWan2022NoiseModel(noise_scale=d.prog_noise_scale, **kw)
        # "none": a PCM model with every noise and drift term switched off (exact programming).
        return PCMLikeNoiseModel(g_max=d.g_max_us or 25.0, prog_noise_scale=0.0,
                                 read_noise_scale=0.0, drift_scale=0.0)

    def rpu_config(self, hwa: bool = False):
        """A fresh ``TorchInferenceRPUConfig`` for inference (``hwa=False``) or for hardware-aware
        training (``hwa=True``: weight-noise injection, clipping, remapping, learned input ranges
        from the ``[training]`` table)."""
        from aihwkit.inference import GlobalDriftCompensation
        from aihwkit.simulator.configs import TorchInferenceRPUConfig
        from aihwkit.simulator.parameters.enums import (BoundManagementType, NoiseManagementType,
                                                        WeightClipType, WeightModifierType,
                                                        WeightRemapType)

        s = self.spec
        rpu = TorchInferenceRPUConfig()
        rpu.noise_model = self.noise_model()
        rpu.drift_compensation = GlobalDriftCompensation() if s.drift_compensation.kind == "global" else None
        f = rpu.forward
        f.is_perfect = s.forward.is_perfect
        f.inp_res = 1.0 / (2 ** s.forward.inp_res_bits - 2)
        f.out_res = 1.0 / (2 ** s.forward.out_res_bits - 2)
        f.out_noise = s.forward.out_noise
        f.inp_bound = s.forward.inp_bound
        f.out_bound = s.forward.out_bound
        f.bound_management = {"none": BoundManagementType.NONE,
                              "iterative": BoundManagementType.ITERATIVE}[s.forward.bound_management]
        f.noise_management = {"none": NoiseManagementType.NONE,
                              "abs_max": NoiseManagementType.ABS_MAX}[s.forward.noise_management]
        m = rpu.mapping
        m.max_input_size, m.max_output_size = s.mapping.tile_rows, s.mapping.tile_cols
        m.digital_bias = s.mapping.digital_bias
        m.weight_scaling_omega = s.mapping.weight_scaling_omega
        m.weight_scaling_columnwise = s.mapping.weight_scaling_columnwise
        m.out_scaling_columnwise = s.mapping.out_scaling_columnwise
        ir = rpu.pre_post.input_range
        ir.enable = s.input_range.enable and not s.forward.is_perfect
        ir.learn_input_range = False
        ir.init_from_data = 0
        ir.init_value = s.input_range.init_value
        if hwa:
            t = s.training
            if not self.has_noise_model:
                raise UserError(f"preset {self.name!r} has no device noise model, so hardware-aware "
                                "training has nothing to train against; use e.g. --preset pcm")
            rpu.modifier.type = {"add_normal": WeightModifierType.ADD_NORMAL,
                                 "mult_normal": WeightModifierType.MULT_NORMAL,
                                 "preset": WeightModifierType.NONE,
                                 "none": WeightModifierType.NONE}[t.weight_noise_type]
            rpu.modifier.std_dev = t.weight_noise
            if t.weight_noise_type == "preset":
                from analogmed.analog.hwa_noise import PresetNoiseSimulatorTile
                rpu.simulator_tile_class = PresetNoiseSimulatorTile
                rpu.modifier.pcm_t_inference = t.noise_time_s
                if t.noise_time_min_s > t.noise_time_s:
                    raise UserError(f"preset {self.name!r}: [training] noise_time_min_s ({t.noise_time_min_s:g}) "
                                    f"must be <= noise_time_s ({t.noise_time_s:g})")
                rpu.analogmed_noise_compensation = t.noise_compensation
            rpu.clip.type = {"fixed_value": WeightClipType.FIXED_VALUE,
                             "layer_gaussian": WeightClipType.LAYER_GAUSSIAN,
                             "none": WeightClipType.NONE}[t.clip_type]
            if t.clip_type == "fixed_value" and t.clip_fixed_value <= 0:
                raise UserError(f"preset {self.name!r}: [training] clip_fixed_value must be > 0 with "
                                "clip_type = \"fixed_value\"")
            rpu.clip.fixed_value = t.clip_fixed_value
            rpu.clip.sigma = t.clip_sigma
            rpu.remap.type = {"layerwise": WeightRemapType.LAYERWISE_SYMMETRIC,
                              "channelwise": WeightRemapType.CHANNELWISE_SYMMETRIC,
                              "none": WeightRemapType.NONE}[t.remap]
            ir.enable = True
            ir.learn_input_range = t.learn_input_range
            ir.init_value = t.input_range_init
            ir.init_from_data = t.input_range_init_from_data
            ir.init_std_alpha = t.input_range_init_std_alpha
            ir.decay = t.input_range_decay
            ir.input_min_percentage = t.input_min_percentage
            ir.manage_output_clipping = t.manage_output_clipping
        return rpu


def list_presets() -> list[str]:
    """Names of the shipped presets (``hardware/*.toml``)."""
    return sorted(p.stem for p in data_dir("hardware").glob("*.toml"))


def load_preset(name_or_path: str | Path | Preset) -> Preset:
    """Load a shipped preset by name (``"pcm"``) or a user's TOML by path; validate it.

    Raises :class:`UserError` (one line) for an unknown name, a missing file, malformed TOML or
    unknown / invalid keys.
    """
    if isinstance(name_or_path, Preset):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") or path.exists()):
        path = data_dir("hardware") / f"{text}.toml"
        if not path.exists():
            raise UserError(f"unknown preset {text!r}; shipped presets: {', '.join(list_presets())} "
                            "(or give the path of a preset TOML)")
    if not path.is_file():
        raise UserError(f"preset file {path} does not exist; give a shipped name "
                        f"({', '.join(list_presets())}) or an existing TOML path")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"preset file {path} is not valid TOML ({exc}); fix the syntax") from None
    try:
        spec = PresetFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise UserError(f"preset file {path}: {where}: {err['msg']} (see hardware/README.md for the "
                        "schema)") from None
    return Preset(name=spec.name or path.stem, path=path, spec=spec)
