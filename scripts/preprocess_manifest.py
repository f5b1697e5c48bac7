#!/usr/bin/env python3
"""Preprocesses every scan of a manifest with `brainage preprocess` (for training data).

Runs N scans in parallel at 1 ITK thread each into OUT/<subject_id>/, skips subjects whose
preprocess.json already exists (so a killed run resumes), and writes
  OUT/prep_manifest.csv  subject_id,age,path of the QC-passed model inputs
                         (path = OUT/<id>/t1_mni2mm.nii.gz), ready for `brainage train`;
  OUT/qc_failed.csv      subject_id,exit_code,reason of the others;
  OUT/timing.csv         subject_id,seconds,exit_code of this run's scans.
Python standard library only. Usage:
  scripts/ixi_manifest.sh > manifest.csv
  scripts/preprocess_manifest.py manifest.csv OUT [--jobs 2] [--brainage build/app/brainage]
                                [-- extra brainage preprocess options, e.g. --bias-shrink-mm 8]
"""
import argparse
import csv
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest")
    ap.add_argument("out")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--brainage", default="build/app/brainage")
    ap.add_argument("--only", nargs="*", help="subject ids to (re)run; default all")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = ap.parse_args(argv[:cut]), argv[cut + 1:]  # after --: passed to brainage preprocess
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = list(csv.DictReader(open(args.manifest, newline="")))
    brainage = str(Path(args.brainage).resolve())

    def run(row):
        sid = row["subject_id"]
        d = out / sid
        if (d / "preprocess.json").exists() and not (args.only and sid in args.only):
            return None
        start = time.time()
        with open(out / f"{sid}.log", "w") as log:
            rc = subprocess.call([brainage, "preprocess", row["path"], "-o", str(d), "--threads", "1", *extra],
                                 stdout=log, stderr=subprocess.STDOUT)
        seconds = time.time() - start
        print(f"{sid}: exit {rc} in {seconds:.1f} s", flush=True)
        return sid, seconds, rc

    todo = [r for r in rows if not args.only or r["subject_id"] in args.only]
    with ThreadPoolExecutor(args.jobs) as pool:
        timings = [t for t in pool.map(run, todo) if t]
    with open(out / "timing.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject_id", "seconds", "exit_code"])
        w.writerows(timings)

    passed, failed = [], []
    for row in rows:
        sid = row["subject_id"]
        report = out / sid / "preprocess.json"
        if not report.exists():
            log = (out / f"{sid}.log").read_text().strip().splitlines() if (out / f"{sid}.log").exists() else []
            failed.append([sid, "?", log[-1] if log else "no output"])
            continue
        j = json.load(open(report))
        if j["qc"]["passed"]:
            passed.append([sid, row["age"], str(out / sid / "t1_mni2mm.nii.gz")])
        else:
            failed.append([sid, 5, "; ".join(j["qc"]["flags"])])
    with open(out / "prep_manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject_id", "age", "path"])
        w.writerows(passed)
    with open(out / "qc_failed.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject_id", "exit_code", "reason"])
        w.writerows(failed)
    print(f"{len(passed)} passed QC, {len(failed)} did not; see {out / 'qc_failed.csv'}")


if __name__ == "__main__":
    sys.exit(main())
