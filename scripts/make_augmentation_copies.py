#!/usr/bin/python3
"""Augmentation copies of training scans, for `brainage train --model-kind vbm --vbm-augment`.

Two kinds of copy per subject, each a scan users actually give the tool (docs/ROBUSTNESS.md):
  strip  the scan times its reference brain mask (labels > 0): a skull-stripped input;
  bias   the scan times a random smooth multiplicative bias field: the log field is a linear
         ramp along a random direction mixed (weight w ~ U(0, 1)) with a quadratic bowl of
         random sign whose centre lies within 20 % of the head's bounding box from its
         middle, scaled so the field spans a factor drawn from U(1.2, 1.6) over the head
         (voxels above 10 % of the maximum) and has mean 1 there.
Copies are float32 NIfTI with the scan's qform and sform. Subject k of the selection (in the
participants file's order) draws its field from numpy's default_rng(seed + k), so the same
selection and seed give the same files. Writes OUT/strip/<id>_T1.nii.gz,
OUT/bias/<id>_T1.nii.gz and OUT/manifest_{strip,bias}.csv (subject_id,age,path): run each
manifest through scripts/preprocess_manifest.py, then give train its prep_manifest.csv.

  scripts/make_augmentation_copies.py --participants ../shared/data/ixi-hh-2mm/participants.csv \
      --subjects m147.csv --out AUG [--seed 1000] [--kinds strip,bias]

participants: subject_id, age, t1 (or path), labels (paths relative to the file, or absolute);
--subjects: any CSV with a subject_id column (e.g. the training manifest): only those subjects.
Needs numpy and nibabel (Debian: python3-numpy python3-nibabel, installed by scripts/setup.sh).
"""
import argparse
import csv
import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def random_log_field(shape, head, rng):
    """Log bias field on the voxel grid: a random linear ramp mixed with a random quadratic
    bowl, spanning log(U(1.2, 1.6)) over `head`, mean 0 there."""
    corners = np.argwhere(head)
    lo, hi = corners.min(0), corners.max(0)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(np.float32)
    u = np.clip((grid - lo) / np.maximum(hi - lo, 1), 0, 1) - 0.5  # [-0.5, 0.5] over the head's box
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    ramp = u @ direction
    centre = rng.uniform(-0.2, 0.2, 3)
    bowl = -((u - centre) ** 2).sum(-1) * rng.choice([-1, 1])
    w = rng.uniform(0, 1)
    field = (1 - w) * ramp / np.ptp(ramp[head]) + w * bowl / np.ptp(bowl[head])
    field = field / np.ptp(field[head]) * np.log(rng.uniform(1.2, 1.6))
    return field - field[head].mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--participants", required=True)
    ap.add_argument("--subjects", help="CSV whose subject_id column selects the subjects (default: all)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--kinds", default="strip,bias")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    if any(k not in ("strip", "bias") for k in kinds):
        sys.exit(f"--kinds: strip and/or bias, got {args.kinds}")
    base = Path(args.participants).resolve().parent
    rows = list(csv.DictReader(open(args.participants, newline="")))
    if args.subjects:
        keep = {r["subject_id"] for r in csv.DictReader(open(args.subjects, newline=""))}
        rows = [r for r in rows if r["subject_id"] in keep]
    out = Path(args.out).resolve()
    manifests = {k: [] for k in kinds}
    for k in kinds:
        (out / k).mkdir(parents=True, exist_ok=True)
    for index, row in enumerate(rows):
        sid = row["subject_id"]
        scan = nib.load(base / (row.get("t1") or row["path"]))
        voxels = np.asarray(scan.get_fdata(dtype=np.float32))
        header = scan.header.copy()
        header.set_data_dtype(np.float32)

        def save(data, path):
            image = nib.Nifti1Image(data.astype(np.float32), scan.affine, header=header)
            image.set_qform(scan.get_qform(), int(scan.header["qform_code"]))
            image.set_sform(scan.get_sform(), int(scan.header["sform_code"]))
            nib.save(image, path)
            manifests[path.parent.name].append([sid, row["age"], str(path)])

        if "strip" in kinds:
            brain = np.asarray(nib.load(base / row["labels"]).dataobj) > 0
            save(voxels * brain, out / "strip" / f"{sid}_T1.nii.gz")
        if "bias" in kinds:
            rng = np.random.default_rng(args.seed + index)
            head = voxels > 0.1 * voxels.max()
            save(voxels * np.exp(random_log_field(voxels.shape, head, rng)), out / "bias" / f"{sid}_T1.nii.gz")
        print(f"{index + 1}/{len(rows)} {sid}", flush=True)
    for k, entries in manifests.items():
        with open(out / f"manifest_{k}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["subject_id", "age", "path"])
            writer.writerows(entries)


if __name__ == "__main__":
    main()
