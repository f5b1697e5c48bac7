#!/usr/bin/env python3
"""Cross-validated accuracy study behind docs/RESULTS.md (issue 8).

Runs `brainage train` for each neural model kind on the same age-stratified k folds
(the folds depend only on --seed), and evaluates two non-neural baselines on the very
same folds, read back from each run's split.csv:
  * mean:       predict the training folds' mean age;
  * volumetric: ridge regression on brain volume (native mL), GM/WM/CSF fractions and
                tissue mean intensities, all read from each subject's preprocess.json.
Then reports MAE, RMSE and Pearson r per model, and a paired comparison of per-subject
absolute errors of every model against ERMoE-ba (bootstrap 95% CI of the mean difference
and a two-sided Wilcoxon signed-rank test, normal approximation).

Python standard library only. Usage:
  scripts/cv_study.py --brainage build/app/brainage --manifest prep_manifest.csv \
      --prep-root DIR --out runs/ [--folds 5] [--seeds 42] [--epochs 40] [--jobs 2]
The manifest holds subject_id,age,path with path = <prep-root>/<id>/t1_mni2mm.nii.gz.
"""
import argparse
import csv
import json
import math
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

KINDS = ["ermoe", "dense", "softmax_moe"]


def run_training(args, kind, seed, fold):
    out = Path(args.out) / kind / f"seed{seed}" / f"fold{fold}"
    if (out / "validation_predictions.csv").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    cmd = [args.brainage, "train", "--manifest", args.manifest, "-o", str(out), "--model-kind", kind,
           "--folds", str(args.folds), "--fold", str(fold), "--seed", str(seed), "--epochs", str(args.epochs),
           "--patience", str(args.patience), "--threads", str(args.threads), "--quiet"] + args.extra
    with open(out / "train.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {rc}; see {out / 'train.log'}")
    return out


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def features(prep_root, sid):
    j = json.load(open(Path(prep_root) / sid / "preprocess.json"))
    vols = j["tissue_volumes_ml"]
    total = vols["csf"] + vols["gm"] + vols["wm"]
    means = j["tissue_means"]
    return [j["brain_volume_ml"] / 1000.0, vols["gm"] / total, vols["wm"] / total, vols["csf"] / total,
            means["gm"], means["wm"], means["csf"]]


def solve(a, b):
    """Gaussian elimination with partial pivoting for a small dense system."""
    n = len(a)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    return [m[i][n] / m[i][i] for i in range(n)]


def ridge_fit_predict(x_train, y_train, x_test, lam):
    d = len(x_train[0])
    mu = [sum(r[j] for r in x_train) / len(x_train) for j in range(d)]
    sd = [math.sqrt(sum((r[j] - mu[j]) ** 2 for r in x_train) / len(x_train)) or 1.0 for j in range(d)]
    z = lambda r: [(r[j] - mu[j]) / sd[j] for j in range(d)]
    zt = [z(r) for r in x_train]
    ym = sum(y_train) / len(y_train)
    a = [[sum(r[i] * r[j] for r in zt) + (lam if i == j else 0.0) for j in range(d)] for i in range(d)]
    b = [sum(r[i] * (y - ym) for r, y in zip(zt, y_train)) for i in range(d)]
    w = solve(a, b)
    return [ym + sum(wi * zi for wi, zi in zip(w, z(r))) for r in x_test]


def metrics(ages, preds):
    n = len(ages)
    err = [p - a for a, p in zip(ages, preds)]
    mae = sum(abs(e) for e in err) / n
    rmse = math.sqrt(sum(e * e for e in err) / n)
    ma, mp = sum(ages) / n, sum(preds) / n
    cov = sum((a - ma) * (p - mp) for a, p in zip(ages, preds))
    va = sum((a - ma) ** 2 for a in ages)
    vp = sum((p - mp) ** 2 for p in preds)
    r = cov / math.sqrt(va * vp) if va > 0 and vp > 0 else float("nan")
    return mae, rmse, r


def bootstrap_ci(diffs, reps=5000, seed=1):
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(reps))
    return means[int(0.025 * reps)], means[int(0.975 * reps) - 1]


def wilcoxon_p(diffs):
    d = [x for x in diffs if x != 0]
    n = len(d)
    if n == 0:
        return 1.0
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    w_plus = sum(r for r, x in zip(ranks, d) if x > 0)
    mean = n * (n + 1) / 4
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    z = (w_plus - mean) / sd
    return math.erfc(abs(z) / math.sqrt(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brainage", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--prep-root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--patience", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--kinds", nargs="+", default=KINDS)
    ap.add_argument("--run-folds", type=int, nargs="+", default=None,
                    help="evaluate only these folds (default: all); every model uses the same ones")
    ap.add_argument("--ridge-lambda", type=float, default=1.0)
    ap.add_argument("extra", nargs="*", help="extra `brainage train` options after --")
    args = ap.parse_args()

    folds = args.run_folds if args.run_folds is not None else list(range(args.folds))
    jobs = [(k, s, f) for s in args.seeds for f in folds for k in args.kinds]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda t: run_training(args, *t), jobs))

    # per model: {(seed, subject): prediction}; ages
    preds = {k: {} for k in args.kinds + ["volumetric", "mean"]}
    ages = {}
    routing = {k: [] for k in args.kinds}
    seconds = {k: 0.0 for k in args.kinds}
    for seed in args.seeds:
        for fold in folds:
            for kind in args.kinds:
                run = Path(args.out) / kind / f"seed{seed}" / f"fold{fold}"
                for row in read_csv(run / "validation_predictions.csv"):
                    preds[kind][(seed, row["subject_id"])] = float(row["predicted_age"])
                    ages[row["subject_id"]] = float(row["age"])
                info = json.load(open(run / "model.json"))
                m = info.get("metrics", {})
                routing[kind].append((m.get("val_load_cv"), m.get("val_routing_entropy")))
                seconds[kind] += sum(e["seconds"] for e in json.load(open(run / "metrics.json")))
            split = read_csv(Path(args.out) / args.kinds[0] / f"seed{seed}" / f"fold{fold}" / "split.csv")
            train = [r for r in split if r["set"] == "train"]
            val = [r for r in split if r["set"] == "validation"]
            y = [float(r["age"]) for r in train]
            for r in val:
                preds["mean"][(seed, r["subject_id"])] = sum(y) / len(y)
            xt = [features(args.prep_root, r["subject_id"]) for r in train]
            xv = [features(args.prep_root, r["subject_id"]) for r in val]
            for r, p in zip(val, ridge_fit_predict(xt, y, xv, args.ridge_lambda)):
                preds["volumetric"][(seed, r["subject_id"])] = p

    keys = sorted(preds[args.kinds[0]].keys())
    ref = "ermoe" if "ermoe" in args.kinds else args.kinds[0]
    ref_err = [abs(preds[ref][k] - ages[k[1]]) for k in keys]
    lines = []
    lines.append(f"{len(ages)} held-out subjects, folds {folds} of {args.folds}-fold CV x seed(s) {args.seeds}, "
                 f"{len(keys)} held-out predictions per model")
    lines.append("")
    lines.append("| model | MAE (y) | RMSE (y) | Pearson r | mean abs-error diff vs ERMoE-ba [95% bootstrap CI] | Wilcoxon p | load CV | routing entropy | train CPU-s |")
    lines.append("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for model in args.kinds + ["volumetric", "mean"]:
        p = [preds[model][k] for k in keys]
        a = [ages[k[1]] for k in keys]
        mae, rmse, r = metrics(a, p)
        if model == ref:
            cmp, pv = "(reference)", ""
        else:
            diffs = [abs(pp - aa) - e for pp, aa, e in zip(p, a, ref_err)]
            lo, hi = bootstrap_ci(diffs)
            cmp = f"{sum(diffs) / len(diffs):+.2f} [{lo:+.2f}, {hi:+.2f}]"
            pv = f"{wilcoxon_p(diffs):.3g}"
        cv = ent = secs = ""
        if model in routing:
            vals = [x for x in routing[model] if x[0] is not None]
            if vals and model != "dense":
                cv = f"{sum(v[0] for v in vals) / len(vals):.2f}"
                ent = f"{sum(v[1] for v in vals) / len(vals):.2f}"
            secs = f"{seconds[model]:.0f}"
        lines.append(f"| {model} | {mae:.2f} | {rmse:.2f} | {r:.3f} | {cmp} | {pv} | {cv} | {ent} | {secs} |")
    text = "\n".join(lines) + "\n"
    Path(args.out, "summary.md").write_text(text)
    with open(Path(args.out, "per_subject.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "subject_id", "age"] + args.kinds + ["volumetric", "mean"])
        for k in keys:
            w.writerow([k[0], k[1], ages[k[1]]] + [f"{preds[m][k]:.3f}" for m in args.kinds + ["volumetric", "mean"]])
    print(text)


if __name__ == "__main__":
    main()
