#pragma once
// Data-parallel training across processes and machines on LibTorch's own c10d engine
// (the one `torchrun` jobs use): a TCPStore rendezvous (rank 0 hosts it) and a Gloo
// process group. Every rank holds a full replica of the model, reads its own shard of the
// data, and averages its gradients with the others once per step, so N ranks with local
// batch b take exactly the steps one process would take with a global batch of N*b.
//
// Plugs into any training loop:
//   DistributedContext dist(DistributedOptions::from_environment());
//   dist.broadcast_parameters(*model);                    // same start on every rank
//   for (...) { loss.backward(); dist.all_reduce_gradients(*model); optimizer.step(); }
//   if (dist.is_main()) save_checkpoint(...);
// With world_size 1 nothing is opened and every call is a cheap no-op.
//
// Every collective is bounded by the timeout: a rank that dies or stops responding makes
// the others throw ModelError ("... a peer rank died or stopped responding ...") instead of
// hanging forever. The header needs no Gloo headers (the process group is behind a pimpl).
#include <torch/torch.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace brainage::model {

struct DistributedOptions {
  /** Default = 1. Number of processes (ranks) in the job; 1 = not distributed. */
  int world_size = 1;
  /** Default = 0. This process's rank in [0, world_size); rank 0 hosts the TCPStore, writes checkpoints and logs. */
  int rank = 0;
  /** Default = "127.0.0.1". Host (name or address) of rank 0, where the TCPStore listens. */
  std::string master_addr = "127.0.0.1";
  /** Default = 29500. TCP port of the TCPStore on master_addr (torchrun's default). */
  int master_port = 29500;
  /** Default = 0. Rank within this machine (selects the GPU when training on CUDA). */
  int local_rank = 0;
  /** Default = 60 s. Bound on the rendezvous and on every collective; a dead peer fails the job after this. */
  std::chrono::seconds timeout{60};
  /** Default = 25 MiB. Gradient bucket size: gradients are flattened into buckets of this size, one all-reduce each (DDP's default). */
  std::size_t bucket_mib = 25;

  bool enabled() const { return world_size > 1; }

  /// Throws UsageError naming the field and the broken rule (world_size >= 1,
  /// 0 <= rank < world_size, 1 <= master_port <= 65535, timeout > 0, bucket_mib >= 1).
  void validate() const;

  /// `defaults` overridden by the launcher's environment variables WORLD_SIZE, RANK,
  /// MASTER_ADDR, MASTER_PORT, LOCAL_RANK (torchrun / Slurm-wrapper conventions); when
  /// RANK is absent, SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID are used if present.
  /// Throws UsageError for a variable that is not a number.
  static DistributedOptions from_environment(const DistributedOptions& defaults);
  static DistributedOptions from_environment();
};

/// One rank's membership in the data-parallel group. Not copyable; one per process.
class DistributedContext {
 public:
  /// Joins the group: rank 0 starts the TCPStore server on master_port, every rank
  /// connects and the Gloo process group connects all pairs. Blocks until all
  /// world_size ranks have joined; throws ModelError after `timeout` otherwise.
  explicit DistributedContext(const DistributedOptions& options = {});
  ~DistributedContext();
  DistributedContext(const DistributedContext&) = delete;
  DistributedContext& operator=(const DistributedContext&) = delete;

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  int local_rank() const { return options_.local_rank; }
  bool is_main() const { return options_.rank == 0; }
  bool enabled() const { return options_.world_size > 1; }
  const DistributedOptions& options() const { return options_; }
  /// "gloo" or "none" (world size 1).
  std::string backend() const;

  /// Copies every parameter and buffer of `module` from rank 0 to all ranks (call once
  /// after construction or after loading a checkpoint on rank 0 only).
  void broadcast_parameters(torch::nn::Module& module);

  /// Averages the gradients of `module`'s trainable parameters over all ranks: gradients
  /// are flattened into buckets of bucket_mib (per dtype), one all-reduce per bucket (all
  /// in flight together), divided by world_size and copied back. A parameter without a
  /// gradient on this rank (an expert no local token chose) counts as zero; it keeps no
  /// gradient only if no rank produced one, so optimisers skip exactly the parameters a
  /// single process on the global batch would skip.
  void all_reduce_gradients(torch::nn::Module& module);

  /// Element-wise sum over ranks (e.g. loss sums, sample counts, metric numerators).
  std::vector<double> all_reduce_sum(const std::vector<double>& values);
  /// Mean of `value` over ranks.
  double all_reduce_mean(double value);

  /// Throws ModelError naming `what` unless every rank passed the same value (e.g. the
  /// manifest size or the step a run resumes from).
  void check_same_on_all_ranks(const std::string& what, int64_t value);

  /// Waits until every rank arrived (bounded by the timeout).
  void barrier();

 private:
  struct Group;
  DistributedOptions options_;
  std::unique_ptr<Group> group_;  // null when world_size == 1
};

/// The indices of a data set of `n` items that `rank` of `world` trains on: items
/// rank, rank+world, rank+2*world, ... (strided, so the union of every rank's local batch
/// s is the global batch s of one process reading the same order). With `pad` (default),
/// shards are padded by wrapping around to ceil(n/world) items so every rank takes the same
/// number of steps (PyTorch's DistributedSampler); without, the tail is uneven and nothing
/// is repeated. Throws UsageError for world < 1 or rank outside [0, world).
std::vector<std::size_t> shard_indices(std::size_t n, int rank, int world, bool pad = true);

/// The same over an explicit (e.g. shuffled, identically seeded on every rank) order.
std::vector<std::size_t> shard_indices(const std::vector<std::size_t>& order, int rank, int world, bool pad = true);

}  // namespace brainage::model
