#pragma once
// `brainage merge <shard dirs...> -o <out>`: combines the outputs of `evaluate --shard i/N`
// runs (i = 0..N-1) into the outputs one unsharded run would have written.
#include <filesystem>
#include <string>
#include <vector>

namespace brainage::app {

struct MergeOptions {
  /** Shard output folders (each holds results.json). Required. */
  std::vector<std::filesystem::path> shards;
  /** Output folder. Required. */
  std::filesystem::path out;
  /** Render the VTK plots (needs an X display). Default = true. */
  bool plots{true};
};

/// 0 when every row succeeded, 7 when the merged cohort has failures; throws
/// InvalidInputError when the shards do not form one complete cohort.
int run_merge(const MergeOptions& options);
int merge_main(const std::vector<std::string>& args);

}  // namespace brainage::app
