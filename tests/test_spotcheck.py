"""The blinded spot-check (monosemantic/analysis/spotcheck.py): a sheet written and read back into the right
groups, a held-out example shown as text, and the sheet's entries from scored units."""

import csv
import json

import numpy as np
import pytest

from monosemantic.analysis import interpretability as ip
from monosemantic.analysis import spotcheck as sc


def test_spotcheck_roundtrip(tmp_path):
    entries = [{"group": g, "unit": u, "top": [f"x ⟦{u}⟧"], "intervals": [[], ["a"]], "logits": ["t"]}
               for g in ("features", "neurons") for u in range(3)]
    ids = sc.write_spotcheck(tmp_path, entries, seed=1)
    assert len(ids) == 6 and (tmp_path / "spotcheck.md").read_text().count("## U") == 6
    key = json.loads((tmp_path / "spotcheck_key.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "spotcheck_scores.csv")))
    for row in rows:  # the rater gives features 2+6+4+2 and neurons 0; one row left unscored
        feat = key[row["id"]]["group"] == "features"
        if not (feat and key[row["id"]]["unit"] == 2):
            row.update(interpretation="x", confidence_0_2="2" if feat else "0", consistency_0_6="6" if feat else "0",
                       logit_0_4="4" if feat else "0", specificity_0_2="2" if feat else "0")
    with open(tmp_path / "filled.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=sc.SPOTCHECK_FIELDS)
        w.writeheader()
        w.writerows(rows)
    got = sc.read_spotcheck(tmp_path / "filled.csv", tmp_path / "spotcheck_key.json")
    assert got == {"features": [14.0, 14.0], "neurons": [0.0, 0.0, 0.0]}
    rows[0]["logit_0_4"] = "7"
    rows[0].update(confidence_0_2="1", consistency_0_6="1", specificity_0_2="1")
    with open(tmp_path / "bad.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=sc.SPOTCHECK_FIELDS)
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(ValueError, match="outside"):
        sc.read_spotcheck(tmp_path / "bad.csv", tmp_path / "spotcheck_key.json")


class Tok:
    """Three tokens: the end-of-text token, "ab", and a newline (byte-level: Ċ)."""

    toks = ["<|endoftext|>", "ab", "Ċ"]

    def get_vocab_size(self):
        return 3

    def id_to_token(self, i):
        return self.toks[i]


def test_context_text_marks_the_token_within_its_context():
    tokens = np.array([1, 2, 1, 1, 2, 1, 1, 1])
    index = {"token": np.array([4, 1]), "context_start": np.array([2, 0])}
    # point 0: token 4 in the context starting at 2 (n_ctx 4: tokens 2..5), 1 before and 1 after it
    assert sc.context_text(Tok(), tokens, index, 0, 4, before=1, after=1) == "ab⟦↵⟧ab"
    # point 1: the window stops at its context's start, the newline is shown as ↵
    assert sc.context_text(Tok(), tokens, index, 1, 4, before=5, after=0) == "ab⟦↵⟧"


def test_spotcheck_entries_draw_from_the_held_out_activations():
    tokens = np.tile([1, 2], 50)
    index = {"token": np.arange(100), "context_start": np.arange(100) // 10 * 10}
    acts = np.zeros((100, 2))
    acts[[5, 15, 25], 0] = [3.0, 2.0, 1.0]
    acts[::2, 1] = np.linspace(0.1, 1.0, 50)
    recs = [{"unit": 7, "promoted_text": ["x"]}, {"unit": 9, "promoted_text": ["y"]}, {"unit": 11}]
    entries = sc.spotcheck_entries("features", recs, acts, Tok(), tokens, index, 10, 2, 4, seed=1)
    assert [(e["group"], e["unit"], e["logits"]) for e in entries] == [("features", 7, ["x"]), ("features", 9, ["y"])]
    # unit 7 fires on three points: they are its top examples, highest first, and fill its intervals
    assert entries[0]["top"] == [sc.context_text(Tok(), tokens, index, p, 10) for p in (5, 15, 25)]
    assert sum(len(i) for i in entries[0]["intervals"]) == 3 and len(entries[1]["intervals"]) == 4
    assert len(entries[1]["top"]) == 8 and all(len(i) <= 3 for i in entries[1]["intervals"])
    mix = ip.heldout_mix(acts[:, 0], np.random.default_rng(1), 8, 4, 3, 0)  # the same draw as the sheet's
    assert entries[0]["intervals"][3] == [sc.context_text(Tok(), tokens, index, int(p), 10)
                                          for p in mix["index"][mix["component"] == 4]]
