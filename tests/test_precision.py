"""precision: auto resolves to bf16 only where the hardware multiplies bf16 (or on a GPU); an explicit bf16 on a
CPU without bf16 units is honoured but warned about (PyTorch emulates it, ~8x slower than fp32 on an AVX2 CPU)."""

import torch

from monosemantic.core import utils

CPU = torch.device("cpu")


def _cpu(monkeypatch, has_bf16: bool):
    monkeypatch.setattr(utils, "cpu_has_bf16", lambda: has_bf16)


def test_auto_takes_bf16_only_with_bf16_units(monkeypatch, capsys):
    _cpu(monkeypatch, True)
    assert utils.resolve_precision("auto", CPU) == "bf16"
    _cpu(monkeypatch, False)
    assert utils.resolve_precision("auto", CPU) == "fp32"
    assert utils.resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert capsys.readouterr().err == ""


def test_explicit_choices_are_kept_and_emulated_bf16_is_warned(monkeypatch, capsys):
    _cpu(monkeypatch, False)
    assert utils.resolve_precision("fp32", CPU) == "fp32" and capsys.readouterr().err == ""
    assert utils.resolve_precision("bf16", CPU) == "bf16"
    assert "without bf16 matrix units" in capsys.readouterr().err
    _cpu(monkeypatch, True)
    assert utils.resolve_precision("bf16", CPU) == "bf16" and capsys.readouterr().err == ""


def test_cpu_has_bf16_reads_the_flags(monkeypatch, tmp_path):
    for flags, expected in (("fpu avx2 fma", False), ("avx512f avx512_bf16", True), ("amx_tile amx_bf16", True)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor : 0\nflags : {flags}\n")
        real = utils.Path
        monkeypatch.setattr(utils, "Path", lambda p, real=real, info=info: info if p == "/proc/cpuinfo" else real(p))
        assert utils.cpu_has_bf16() is expected
