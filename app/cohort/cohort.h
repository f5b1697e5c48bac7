#pragma once
// The cohort engine (library brainage_cohort: plain C++ + VTK charts; no ITK, no Torch):
// its public API, the one header its callers (the evaluate and merge commands, the
// per-subject predictor of app/prediction/) include.
//
//   cohort in       load_cohort(path) -> Cohort              a CSV/TSV table or a BIDS folder
//   per subject     SubjectProcessor(Subject, SubjectWorkspace) -> SubjectOutcome
//                   (injected; throws typed errors for a failed subject)
//   run + results   evaluate_cohort(EvaluateSettings, processor) -> EvaluateReport
//                   parallel jobs, journal (resume), shards, failures recorded per row
//   report          predictions.csv, metrics.json (Calibration, CohortMetrics), plots,
//                   report.html, results.json; merge_cohort() joins shard folders
//
// The other headers of app/cohort/ are the engine's parts (table parsing, journal, shards,
// metrics, charts, HTML).
#include "app/cohort/cohort_evaluation.h"
#include "app/cohort/cohort_metrics.h"
#include "app/cohort/cohort_table.h"
