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
from pathlib import Path

from monosemantic.core.utils import write_json

# ISA extensions whose presence changes which kernels PyTorch, MKL and oneDNN run (and so fp32 rounding)
ISA_PREFIXES = ("avx", "fma", "amx", "sse4")


def cpu_info(cpuinfo: str | None = None) -> dict[str, object]:
    """{"cpu": model name, "isa": sorted ISA flags that matter} from /proc/cpuinfo (or the text given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor(), []
    for line in cpuinfo.splitlines():
        if line.startswith("model name") and model in ("", platform.processor()):
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = sorted(f for f in line.split(":", 1)[1].split() if f.startswith(ISA_PREFIXES))
    return {"cpu": model, "isa": flags}


def platform_info() -> dict[str, object]:
    """What decides whether two runs can be bit-identical: CPU, its ISA, core count, library versions."""
    import numpy
    import torch

    return {**cpu_info(), "machine": platform.machine(), "cores": os.cpu_count(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def training_record(stage: str, device: str, precision: str, **extra: str) -> dict[str, object]:
    """The provenance of one trained artifact, strings only (see the module docstring)."""
    import torch

    info = cpu_info()
    record = {"stage": stage, "cpu": info["cpu"], "isa": info["isa"], "device": device, "precision": precision,
              "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "threads": str(torch.get_num_threads()), **{k: str(v) for k, v in extra.items()}}
    if device.startswith("cuda") and torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name()
    return record


def write_training_record(path: str | Path, stage: str, device: str, precision: str, **extra: str) -> dict:
    record = training_record(stage, device, precision, **extra)
    write_json(path, record)
    return record
