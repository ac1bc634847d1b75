"""Stage superposition_arm: one arm of the dose-response experiment (monosemantic/superposition.py).

    python stages/superposition_arm.py ARM [--params params.yaml]

ARM is a key of superposition.arms. Writes artifacts/superposition/ARM/{model,sae}/ and
metrics/superposition/ARM.json. Run all arms with `dvc repro experiments/superposition/dvc.yaml`.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monosemantic.config import stage_params  # noqa: E402
from monosemantic.dose_response import run_arm  # noqa: E402
from monosemantic.utils import fail, resolve_device, resolve_precision, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("arm")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = stage_params(args.params)
    if args.arm not in params.superposition.arms:
        fail(f"arm {args.arm!r} is not in superposition.arms ({', '.join(params.superposition.arms)})")
    try:
        device = resolve_device(params.device)
        out = run_arm(params, args.arm, Path("artifacts/superposition") / args.arm, device,
                      resolve_precision(params.precision, device))
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        fail(str(e))
    timing = out.pop("seconds")
    write_json(Path("metrics/superposition") / f"{args.arm}.json", out)
    for k, p in out["proxies"].items():
        print(f"{args.arm} {k:>7} share {p['share']:.4f}: feature r {p['feature_r']:.3f} | best neuron r "
              f"{p['best_neuron_r']:.3f} | nearest neuron r {p['nearest_neuron_r']:.3f} | decoder >=0.1: "
              f"{p['decoder_neurons_ge_0.1']} | dedicated neurons {p['dedicated_neurons']} | "
              f"learned {p['context_learned']}")
    print(f"done in {timing:.0f}s")


if __name__ == "__main__":
    main()
