// brainage_preprocess_bench: the preprocessing pipeline's per-step time on one scan, in one
// process, as `brainage preprocess` runs it (same defaults) but without the CLI's start-up
// (the brainage binary loads LibTorch and VTK, ~1.5 s before any work) and without writing.
//
//   brainage_preprocess_bench <scan> [--reps 5] [--threads 2] [--template-dir DIR]
//
// The first run is "cold": it reads the templates and makes their working-grid copies, as a
// single `brainage preprocess` call does. The next --reps runs are "warm", as every scan
// after the first in a cohort (`brainage evaluate`). Reported: each step's seconds (from
// preprocess.json's "seconds") for the cold run and the median of the warm runs, CPU seconds
// of the whole process, and peak resident memory. Links brainage_preprocessing only.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "preprocessing/preprocess_pipeline.h"

namespace {

struct BenchOptions {
  std::string scan;                                     // required
  int reps = 5;                                         // warm runs. Default = 5.
  int threads = 2;                                      // ITK threads. Default = 2 (the target machine's cores).
  std::string template_dir = "/usr/share/mricron/templates";  // Default = mricron-data's folder.
  bool rank_intensities = false;                        // registration on intensity ranks. Default = false (the pipeline's).
};

BenchOptions parse(int argc, char** argv) {
  BenchOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << "usage: brainage_preprocess_bench <scan> [--reps 5] [--threads 2] [--template-dir DIR] [--rank-intensities 1|0]\n";
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0) {
      o.scan = arg;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--reps") o.reps = std::stoi(value);
    else if (arg == "--threads") o.threads = std::stoi(value);
    else if (arg == "--template-dir") o.template_dir = value;
    else if (arg == "--rank-intensities" && (value == "0" || value == "1")) o.rank_intensities = value == "1";
    else if (arg == "--rank-intensities") throw std::invalid_argument("--rank-intensities takes 1 or 0, not '" + value + "'");
    else throw std::invalid_argument("unknown option " + arg);
  }
  if (o.scan.empty()) throw std::invalid_argument("a scan is required");
  if (o.reps < 1 || o.threads < 1) throw std::invalid_argument("--reps and --threads must be >= 1");
  return o;
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto bench = parse(argc, argv);
    brainage::preprocessing::PreprocessOptions options;
    options.threads = bench.threads;
    options.template_dir = bench.template_dir;
    options.registration.rank_intensities = bench.rank_intensities;
    std::map<std::string, double> cold;
    std::map<std::string, std::vector<double>> warm;
    double cpu_cold = 0;
    std::vector<double> cpu_warm;
    for (int run = 0; run <= bench.reps; ++run) {
      const double cpu_before = cpu_seconds();
      const auto result = brainage::preprocessing::preprocess_scan(bench.scan, options);
      const double cpu = cpu_seconds() - cpu_before;
      for (const auto& [step, seconds] : result.report["seconds"].items()) {
        if (run == 0) cold[step] = seconds.get<double>();
        else warm[step].push_back(seconds.get<double>());
      }
      if (run == 0) cpu_cold = cpu;
      else cpu_warm.push_back(cpu);
      if (run == 0)
        std::printf("scan %s\nthreads %d, QC %s, brain %.0f mL\n", bench.scan.c_str(), bench.threads,
                    result.qc_passed ? "passed" : "FAILED", result.report["brain_volume_ml"].get<double>());
    }
    std::printf("%-24s %10s %14s\n", "step", "cold s", "warm median s");
    for (const auto& [step, seconds] : cold)
      if (step != "total") std::printf("%-24s %10.3f %14.3f\n", step.c_str(), seconds, median(warm[step]));
    std::printf("%-24s %10.3f %14.3f\n", "total (wall)", cold["total"], median(warm["total"]));
    std::printf("%-24s %10.3f %14.3f\n", "CPU seconds", cpu_cold, median(cpu_warm));
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf("peak resident memory %.0f MB\n", usage.ru_maxrss / 1024.0);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "brainage_preprocess_bench: %s\n", e.what());
    return 1;
  }
}
