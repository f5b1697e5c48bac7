#include "app/cohort/shard.h"

#include <regex>

#include "common/content_hash.h"
#include "common/errors.h"

namespace brainage::cohort {

ShardSpec parse_shard(const std::string& text) {
  static const std::regex kShard(R"(\s*(\d{1,6})\s*/\s*(\d{1,6})\s*)");
  std::smatch m;
  if (!std::regex_match(text, m, kShard))
    throw UsageError("--shard '" + text + "': expected i/N with 0 <= i < N (e.g. 0/4 ... 3/4)");
  ShardSpec s{std::stoi(m[1]), std::stoi(m[2])};
  if (s.count < 1 || s.index >= s.count)
    throw UsageError("--shard '" + text + "': index must satisfy 0 <= i < N (e.g. 0/4 ... 3/4)");
  return s;
}

int shard_of(const std::string& subject_id, int count) {
  if (count <= 1) return 0;
  return static_cast<int>(sha256_prefix64(subject_id) % static_cast<std::uint64_t>(count));
}

}  // namespace brainage::cohort
