#include "app/cli/merge_command.h"

#include <iostream>

#include "app/cli/cli.h"
#include "app/cohort/cohort.h"

namespace brainage::app {

int run_merge(const MergeOptions& o) {
  cohort::OutputOptions outputs;
  outputs.plots = o.plots;
  const auto summary = cohort::merge_cohort(o.shards, o.out, outputs);
  std::cerr << "brainage merge: " << o.shards.size() << " shards, " << summary.rows << " rows, " << summary.failures
            << " failed";
  if (summary.metrics.raw.n > 0) std::cerr << "; N=" << summary.metrics.raw.n << " MAE " << summary.metrics.raw.mae;
  std::cerr << "\n  outputs in " << o.out.string() << "\n";
  if (!summary.plots_note.empty()) std::cerr << "  " << summary.plots_note << "\n";
  return cohort::exit_code_for(summary.failures);
}

int merge_main(const std::vector<std::string>& args) {
  MergeOptions o;
  std::vector<std::string> shards;
  std::string out;
  po::options_description desc("merge options");
  desc.add_options()
    ("shards", po::value(&shards)->multitoken()->required(), "output folders of evaluate --shard i/N, all N of them")
    ("out,o", po::value(&out)->required(), "output folder for the merged predictions, metrics, plots, report")
    ("no-plots", "do not render the VTK plots");
  po::positional_options_description pos;
  pos.add("shards", -1);
  const auto vm = parse_command_line("merge", "<shard dirs...> -o <out>", args, desc, pos);
  if (!vm) return 0;
  for (const auto& s : shards) o.shards.emplace_back(s);
  o.out = out;
  o.plots = !vm->count("no-plots");
  return run_merge(o);
}

}  // namespace brainage::app
