"""The blinded spot-check for a person (the paper's hand rubric, Fig. 7), next to the automatic rubric of
interpretability.py.

`write_spotcheck` writes, for features and neurons shuffled together under blinded ids, their top and
interval examples from the held-out split and the tokens their logit weights promote (spotcheck.md), an empty
score sheet (spotcheck_scores.csv) and the key (spotcheck_key.json, the only place naming each unit's group and
index). A person scores the items a machine cannot judge, on the automatic rubric's 0–14 scale: confidence
0–2, interval consistency 0–6, logit consistency 0–4, specificity 0–2; `read_spotcheck` sums them per unit
(scripts/spotcheck_scores.py puts them into Fig. 7).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from monosemantic.analysis.interpretability import heldout_mix
from monosemantic.analysis.token_bytes import token_label
from monosemantic.core.utils import atomic_path, write_json

SPOTCHECK_FIELDS = ("id", "interpretation", "confidence_0_2", "consistency_0_6", "logit_0_4", "specificity_0_2")


def blind_order(units: list[tuple[str, int]], seed: int) -> list[tuple[str, tuple[str, int]]]:
    """Shuffle (group, unit) pairs and give each a blinded id U01, U02, ..."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(units))
    width = max(2, len(str(len(units))))
    return [(f"U{j + 1:0{width}d}", units[int(i)]) for j, i in enumerate(perm)]


def write_spotcheck(out_dir: str | Path, entries: list[dict], seed: int) -> list[str]:
    """Write the blinded spot-check: spotcheck.md (examples per blinded unit), spotcheck_scores.csv (an empty
    score sheet) and spotcheck_key.json (blinded id → group and unit; do not open before scoring).

    entries: {"group", "unit", "top": [str], "intervals": [[str]], "logits": [str]}. Returns the ids."""
    out_dir = Path(out_dir)
    order = blind_order([(e["group"], e["unit"]) for e in entries], seed)
    by_unit = {(e["group"], e["unit"]): e for e in entries}
    lines = ["# Blinded spot-check (paper Fig. 7 rubric)", "",
             "Units are shuffled; features and neurons are mixed. For each unit, write an interpretation from the",
             "top examples, then score it in spotcheck_scores.csv: confidence 0–2, consistency of the interval",
             "examples with the interpretation 0–6, consistency of the promoted logit tokens 0–4, specificity 0–2",
             "(would the interpretation fire on text it should not?). Marked token: ⟦token⟧.", ""]
    for bid, key in order:
        e = by_unit[key]
        lines += [f"## {bid}", "", "Top examples:", ""] + [f"- {s}" for s in e["top"]] + [""]
        for j, ex in enumerate(e["intervals"]):
            if ex:
                lines += [f"Interval {j + 1} of {len(e['intervals'])} (low to high):", ""] + [f"- {s}" for s in ex] + [""]
        lines += ["Tokens its logit weights promote most: " + "  ".join(f"«{t}»" for t in e["logits"]), ""]
    with atomic_path(out_dir / "spotcheck.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(out_dir / "spotcheck_scores.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(SPOTCHECK_FIELDS)
            for bid, _ in order:
                w.writerow([bid] + [""] * (len(SPOTCHECK_FIELDS) - 1))
    write_json(out_dir / "spotcheck_key.json", {bid: {"group": g, "unit": u} for bid, (g, u) in order})
    return [bid for bid, _ in order]


def read_spotcheck(scores_csv: str | Path, key_json: str | Path) -> dict[str, list[float]]:
    """Hand scores per group from a filled score sheet: {group: [total per scored unit]}. Rows with any
    score left empty are skipped; a score outside its range raises ValueError naming the row."""
    key = json.loads(Path(key_json).read_text())
    out: dict[str, list[float]] = {}
    limits = {"confidence_0_2": 2, "consistency_0_6": 6, "logit_0_4": 4, "specificity_0_2": 2}
    with open(scores_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            bid = (row.get("id") or "").strip()
            if bid not in key:
                raise ValueError(f"{scores_csv}: unknown id {bid!r}")
            vals = [(row.get(f) or "").strip() for f in limits]
            if any(v == "" for v in vals):
                continue
            total = 0.0
            for (f, hi), v in zip(limits.items(), vals):
                x = float(v)
                if not 0 <= x <= hi:
                    raise ValueError(f"{scores_csv}: {bid} {f} = {v} outside [0, {hi}]")
                total += x
            out.setdefault(key[bid]["group"], []).append(total)
    return out


def context_text(tok, tokens: np.ndarray, index: dict[str, np.ndarray], p: int, n_ctx: int, before: int = 12,
                 after: int = 4) -> str:
    """A held-out example as text: the tokens around store point p within its context, the token marked ⟦ ⟧."""
    g, c = int(index["token"][p]), int(index["context_start"][p])
    lo, hi = max(c, g - before), min(c + n_ctx, g + after + 1, len(tokens))
    parts = [token_label(tok, int(t)) for t in tokens[lo:hi]]
    parts[g - lo] = f"⟦{parts[g - lo]}⟧"
    return "".join(parts).replace("\n", "↵")


def spotcheck_entries(group: str, recs: list[dict], val_acts: np.ndarray, tok, tokens: np.ndarray,
                      index: dict[str, np.ndarray], n_ctx: int, n_units: int, n_intervals: int,
                      seed: int) -> list[dict]:
    """The sheet's entries of the first n_units units of a group (records of interpretability.evaluate_units,
    val_acts: their held-out activations, column j for recs[j]): 8 top examples and 3 per activation interval
    drawn from the held-out points (index: the val store's index over `tokens`), the promoted logit tokens."""
    rng = np.random.default_rng(seed)
    entries = []
    for j, r in enumerate(recs[:n_units]):
        mix = heldout_mix(val_acts[:, j], rng, 8, n_intervals, 3, 0)
        ex = lambda c: [context_text(tok, tokens, index, int(p), n_ctx)  # noqa: E731
                        for p in mix["index"][mix["component"] == c]]
        entries.append({"group": group, "unit": r["unit"], "top": ex(0),
                        "intervals": [ex(c) for c in range(1, n_intervals + 1)], "logits": r["promoted_text"]})
    return entries
