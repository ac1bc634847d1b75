"""Read a hand-scored blinded spot-check back into the rubric figure (paper Fig. 7).

    python scripts/spotcheck_scores.py SCORES_CSV [--dir artifacts/analysis/interpretability]
                                       [--out paper_figures/fig7_rubric_hand.png]

The interpretability stage writes DIR/spotcheck.md (the blinded units and their examples), DIR/spotcheck_scores.csv
(an empty score sheet) and DIR/spotcheck_key.json (which unit each blinded id is). Copy the score sheet out of
DIR (the stage overwrites DIR), fill it in from spotcheck.md without opening the key, then run this script:
it prints the hand-score medians per group and draws the automatic rubric of every sampled unit beside the
hand scores (OUT; the stage's own fig7_rubric.png is left as DVC made it). Rows left empty are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from monosemantic.analysis import spotcheck  # noqa: E402
from monosemantic.figures import interpretability as ifig  # noqa: E402
from monosemantic.core.utils import fail  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scores", type=Path)
    ap.add_argument("--dir", type=Path, default=Path("artifacts/analysis/interpretability"))
    ap.add_argument("--out", type=Path, default=Path("paper_figures/fig7_rubric_hand.png"))
    args = ap.parse_args(argv)
    key, units = args.dir / "spotcheck_key.json", args.dir / "units.json"
    for p in (args.scores, key, units):
        if not p.exists():
            fail(f"{p}: missing (run `dvc repro interpretability` first; SCORES is your filled copy of "
                 f"{args.dir / 'spotcheck_scores.csv'})")
    try:
        hand = spotcheck.read_spotcheck(args.scores, key)
    except ValueError as e:
        fail(str(e))
    if not hand:
        fail(f"{args.scores}: no fully scored row yet")
    records = json.loads(units.read_text())
    auto = {g: np.array([r["rubric"]["total"] for r in rs]) for g, rs in records.items()}
    ifig.rubric_figure(auto, args.out, hand=hand)
    for g, v in hand.items():
        print(f"{g}: {len(v)} scored, hand rubric median {np.median(v):g} (automatic median {np.median(auto[g]):g})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
