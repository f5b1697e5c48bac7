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
Python standard library only. Exit 1 with one line (before any member is written) when the
checkpoint, the cohort, a held-out subject or the executable is missing; a failed
`evaluate` stops it with one line naming its log. A member's single checkpoint lists as
training subjects the ensemble's minus the ones it held out.
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


def member_data(ensemble, training):
    """The ensemble's training data record, its subject_ids cut to those the member trained on."""
    data = dict(ensemble["training"].get("data", {}))
    held_out = set(training.get("validation_subject_ids", []))
    if isinstance(data.get("subject_ids"), list):
        data["subject_ids"] = [s for s in data["subject_ids"] if s not in held_out]
    return data


def read_cohort(path):
    """Rows by subject_id of a cohort CSV or TSV (a UTF-8 byte-order mark is allowed)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        fail(f"{path}: cannot be read ({e.strerror})")
    lines = text.splitlines()
    delimiter = "\t" if lines and "\t" in lines[0] else ","
    rows = list(csv.DictReader(lines, delimiter=delimiter))
    if not rows or not {"subject_id", "age", "path"} <= set(rows[0]):
        fail(f"{path}: needs the columns subject_id, age, path and at least one row")
    return {r["subject_id"].strip(): r for r in rows}


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
        "training": {"data": member_data(ensemble, training),
                     "options": {k: training[k] for k in OPTION_KEYS if k in training}},
        "metrics": {k: training[k] for k in ("val_mae", "val_load_cv", "val_scan_load_cv") if k in training}
                   | {"final_weights": "last"},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="ensemble checkpoint JSON (e.g. data/model/brainage-default.json)")
    ap.add_argument("cohort", help="CSV with subject_id, age, path of the training subjects' raw scans")
    ap.add_argument("out", help="output folder")
    ap.add_argument("--brainage", default=str(Path(__file__).resolve().parent.parent / "build" / "app" / "brainage"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache-dir", help="preprocessing cache (default OUT/cache)")
    args = ap.parse_args()

    checkpoint = Path(args.checkpoint).resolve()
    try:
        ensemble = json.loads(checkpoint.read_text())
    except (OSError, ValueError) as e:
        fail(f"{checkpoint}: not a readable checkpoint JSON ({e})")
    if not isinstance(ensemble, dict) or ensemble.get("model_kind") != "ensemble":
        fail(f"{checkpoint}: not an ensemble checkpoint")
    rows = read_cohort(args.cohort)
    out = Path(args.out).resolve()
    cache = Path(args.cache_dir).resolve() if args.cache_dir else out / "cache"
    brainage = Path(args.brainage).resolve()
    if not brainage.is_file():
        fail(f"{brainage}: no brainage executable there (build it with scripts/build.sh, or pass --brainage)")

    # Every member's held-out subjects are checked before any work.
    for k, member in enumerate(ensemble["members"]):
        held_out = member["training"].get("validation_subject_ids")
        if not held_out:
            fail(f"{checkpoint}: member {k} records no validation_subject_ids (assembled before they were recorded)")
        missing = [s for s in held_out if s not in rows]
        if missing:
            fail(f"{args.cohort}: member {k}'s held-out subject {missing[0]} is not in the cohort ({len(missing)} missing)")

    for k, member in enumerate(ensemble["members"]):
        held_out = member["training"]["validation_subject_ids"]
        folder = out / f"member{k}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoint.parent / member["weights_file"], folder / "model.pt")
        (folder / "model.json").write_text(json.dumps(member_checkpoint(ensemble, member), indent=2) + "\n")
        with open(folder / "held_out.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["subject_id", "age", "path"])
            for s in held_out:
                w.writerow([s, rows[s]["age"], rows[s]["path"]])
        with open(folder / "evaluate.log", "w") as log:
            code = subprocess.call([str(brainage), "evaluate", "--cohort", str(folder / "held_out.csv"), "-o",
                                    str(folder / "evaluate"), "--model", str(folder / "model.json"), "-j", str(args.jobs),
                                    "--threads", str(args.jobs), "--cache-dir", str(cache), "--no-plots", "--no-progress",
                                    "--include-qc-failed"], stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            fail(f"member {k}: brainage evaluate exited {code}; see {folder / 'evaluate.log'}")
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
