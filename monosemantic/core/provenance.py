"""Where a result was made: the CPU (model name and the ISA flags that change fp32 rounding), the libraries, the
precision. fp32 results differ in their last bits between CPU kinds and training amplifies that, so every trained
artifact records the machine that trained it (metrics/provenance/STAGE.json, written by the training stages), and
tools/reproduction.py compares a user's regenerated metrics with the committed ones knowing both machines.

Only strings are recorded, so the regression and reproduction tools, which compare every *number* under metrics/,
never compare provenance.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from monosemantic.core.utils import write_json

# ISA extensions whose presence changes which kernels PyTorch, MKL and oneDNN run (and so fp32 rounding)
ISA_PREFIXES = ("avx", "fma", "amx", "sse4")
# holds PyTorch, MKL, oneDNN and numpy to AVX2 kernels on any CPU (the Quick start and CI source it)
PIN_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "pin_cpu.sh"


def pin_variables(script: str | Path = PIN_SCRIPT) -> tuple[str, ...]:
    """The environment variables tools/pin_cpu.sh exports (its `export NAME=...` lines), read from the script, so
    that what a record names is what the script sets."""
    try:
        return tuple(re.findall(r"^export ([A-Z_][A-Z0-9_]*)=", Path(script).read_text(), flags=re.MULTILINE))
    except OSError:  # an installed copy without the repository's tools/
        return ()


PIN_VARS = pin_variables()


def pinned_kernels() -> dict[str, str]:
    """The kernel-pinning variables of tools/pin_cpu.sh set in this environment (empty: the CPU's own kernels)."""
    return {k: os.environ[k] for k in PIN_VARS if k in os.environ}


def cpu_info(cpuinfo: str | None = None) -> dict[str, object]:
    """{"cpu": model name, "isa": sorted ISA flags that matter, "cpu_id": "family F model M" (x86)} from
    /proc/cpuinfo (or the text given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags, ident = platform.processor(), [], {}
    for line in cpuinfo.splitlines():
        key = line.split(":", 1)[0].strip()
        if key == "model name" and model in ("", platform.processor()):
            model = line.split(":", 1)[1].strip()
        if key in ("cpu family", "model") and key not in ident:
            ident[key] = line.split(":", 1)[1].strip()
        if key == "flags" and not flags:
            flags = sorted(f for f in line.split(":", 1)[1].split() if f.startswith(ISA_PREFIXES))
    info = {"cpu": model, "isa": flags}
    if ident:  # the model name alone can hide the generation ("AMD EPYC" on both Zen 3 and Zen 4 virtual machines)
        info["cpu_id"] = " ".join(f"{'family' if k == 'cpu family' else k} {v}" for k, v in sorted(ident.items()))
    return info


def platform_info() -> dict[str, object]:
    """What decides whether two runs can be bit-identical: CPU, its ISA, core count, library versions."""
    import numpy
    import torch

    cpu = cpu_info()  # model name and ISA (the kernels' choice; cpu_id is not needed to tell them apart, and the
    # baselines stamped with this dict before it existed stay comparable)
    return {"cpu": cpu["cpu"], "isa": cpu["isa"], "machine": platform.machine(), "cores": os.cpu_count(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def training_record(stage: str, device: str, precision: str, **extra: str) -> dict[str, object]:
    """The provenance of one trained artifact, strings only (see the module docstring)."""
    import torch

    pins = pinned_kernels()
    record = {"stage": stage, **cpu_info(), "device": device, "precision": precision,
              "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "threads": str(torch.get_num_threads()),
              "kernel_pins": " ".join(f"{k}={v}" for k, v in pins.items()) or "none",
              **{k: str(v) for k, v in extra.items()}}
    if device.startswith("cuda") and torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name()
    return record


def write_training_record(path: str | Path, stage: str, device: str, precision: str, **extra: str) -> dict:
    record = training_record(stage, device, precision, **extra)
    write_json(path, record)
    return record
