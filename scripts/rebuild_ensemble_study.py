#!/usr/bin/env python3
"""Rebuilds the out-of-fold study of an ensemble checkpoint from the checkpoint alone.

`brainage ensemble` needs member folders (model.json, model.pt, validation_predictions.csv)
and, for a VBM part, its training folder; the shipped checkpoint keeps the weights and,
since the twentieth session, the subjects each member held out
(members[k].training.validation_subject_ids). This script writes, for each member k,
OUT/member<k>/ with a single-model checkpoint (the member's weights, no bias correction)
and its validation_predictions.csv, made by `brainage evaluate` on the member's held-out
subjects. The out-of-fold numbers of docs/RESULTS.md can then be reproduced, or a new VBM
part or member assembled with the same members, e.g.:

  scripts/ixi_manifest.sh > cohort.csv
  scripts/rebuild_ensemble_study.py data/model/brainage-default.json cohort.csv study --jobs 2
  brainage train --model-kind vbm --manifest PREP_MANIFEST -o study/vbm    # the VBM part's OOF
  brainage ensemble study/member{0..9} --vbm study/vbm --vbm-weight 0.5 --routing-member 3 -o study/comb

COHORT.csv has subject_id, age, path (raw scans) and must hold every held-out subject.
Preprocessing goes through `--cache-dir` (default OUT/cache), one thread per scan.
Python standard library only. Exit 1 with one line when a subject or field is missing.
"""
import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

# What `brainage ensemble` reads from a member's training record (model/ensemble.cpp).
OPTION_KEYS = ("seed", "split_seed", "folds", "fold", "epochs", "final_weights")


def fail(message):
    print(f"rebuild_ensemble_study: {message}", file=sys.stderr)
    sys.exit(1)


def member_checkpoint(ensemble, member):
    """The single-model checkpoint JSON of one ensemble member (weights file model.pt)."""
    training = member["training"]
    return {
        "format": ensemble["format"], "format_version": ensemble["format_version"],
        "model_kind": "neural", "model_id": training["source_model_id"],
        "weights_file": "model.pt", "weights_bytes": member["weights_bytes"],
        "weights_sha256": member["weights_sha256"], "model": member["model"], "grid": ensemble["grid"],
        "preprocessing_version": ensemble["preprocessing_version"],
        "intensity_normalisation": ensemble["intensity_normalisation"],
        "bias_correction": {"slope": 1.0, "intercept": 0.0, "n": 0, "applied": False, "fitted_on": "none",
                            "formula": "pred = slope*age + intercept; corrected = (pred - intercept)/slope"},
        "training": {"data": ensemble["training"].get("data", {}),
                     "options": {k: training[k] for k in OPTION_KEYS if k in training}},
        "metrics": {k: training[k] for k in ("val_mae", "val_load_cv", "val_scan_load_cv") if k in training}
                   | {"final_weights": "last"},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="ensemble checkpoint JSON (e.g. data/model/brainage-default.json)")
    ap.add_argument("cohort", help="CSV with subject_id, age, path of the training subjects' raw scans")
    ap.add_argument("out", help="output folder")
    ap.add_argument("--brainage", default="build/app/brainage")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache-dir", help="preprocessing cache (default OUT/cache)")
    args = ap.parse_args()

    checkpoint = Path(args.checkpoint).resolve()
    ensemble = json.loads(checkpoint.read_text())
    if ensemble.get("model_kind") != "ensemble":
        fail(f"{checkpoint}: not an ensemble checkpoint (model_kind {ensemble.get('model_kind')!r})")
    rows = {r["subject_id"]: r for r in csv.DictReader(open(args.cohort, newline=""))}
    out = Path(args.out).resolve()
    cache = Path(args.cache_dir).resolve() if args.cache_dir else out / "cache"
    brainage = str(Path(args.brainage).resolve())

    for k, member in enumerate(ensemble["members"]):
        held_out = member["training"].get("validation_subject_ids")
        if not held_out:
            fail(f"{checkpoint}: member {k} records no validation_subject_ids (assembled before they were recorded)")
        missing = [s for s in held_out if s not in rows]
        if missing:
            fail(f"{args.cohort}: member {k}'s held-out subject {missing[0]} is not in the cohort ({len(missing)} missing)")
        folder = out / f"member{k}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoint.parent / member["weights_file"], folder / "model.pt")
        (folder / "model.json").write_text(json.dumps(member_checkpoint(ensemble, member), indent=2) + "\n")
        with open(folder / "held_out.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["subject_id", "age", "path"])
            for s in held_out:
                w.writerow([s, rows[s]["age"], rows[s]["path"]])
        subprocess.run([brainage, "evaluate", "--cohort", str(folder / "held_out.csv"), "-o", str(folder / "evaluate"),
                        "--model", str(folder / "model.json"), "-j", str(args.jobs), "--threads", str(args.jobs),
                        "--cache-dir", str(cache), "--no-plots", "--no-progress", "--include-qc-failed"], check=True)
        predictions = list(csv.DictReader(open(folder / "evaluate" / "predictions.csv", newline="")))
        tmp = folder / "validation_predictions.csv.tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["subject_id", "age", "predicted_age"])
            for p in predictions:
                if not p["predicted_age"]:
                    fail(f"{p['subject_id']}: no prediction ({p['error']})")
                w.writerow([p["subject_id"], p["age"], p["predicted_age"]])
        tmp.replace(folder / "validation_predictions.csv")
        errors = [abs(float(p["predicted_age"]) - float(p["age"])) for p in predictions]
        recorded = member["training"].get("val_mae")
        print(f"member {k}: {len(errors)} held-out subjects, MAE {sum(errors) / len(errors):.3f} y"
              + (f" (recorded at training: {recorded:.3f} y)" if recorded is not None else ""))


if __name__ == "__main__":
    main()
