#pragma once
// Cluster sharding: `--shard i/N` keeps the subjects whose stable hash of subject_id
// falls in bucket i (0 ≤ i < N). The split depends only on the ids, so every job of an
// array computes the same partition with no coordination, and the N shards together hold
// every subject exactly once.
#include <string>

namespace brainage::cohort {

struct ShardSpec {
  /** This job's bucket, 0-based. Default = 0. */
  int index{0};
  /** Number of buckets; 1 = no sharding. Default = 1. */
  int count{1};

  bool active() const { return count > 1; }
  std::string text() const { return std::to_string(index) + "/" + std::to_string(count); }
};

/// Parses "i/N" with 0 ≤ i < N, N ≥ 1. Throws UsageError quoting the text otherwise.
ShardSpec parse_shard(const std::string& text);

/// The bucket of `subject_id` among `count` (the first 64 bits of the SHA-256 of the id, modulo count).
int shard_of(const std::string& subject_id, int count);

/// Whether `subject_id` belongs to `shard`.
inline bool in_shard(const std::string& subject_id, const ShardSpec& shard) {
  return shard_of(subject_id, shard.count) == shard.index;
}

}  // namespace brainage::cohort
