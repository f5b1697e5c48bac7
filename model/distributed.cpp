// Data-parallel plumbing on c10d: TCPStore rendezvous + ProcessGroupGloo. This unit is
// compiled with USE_C10D_GLOO (model/CMakeLists.txt), which the Gloo process-group
// header requires; nothing else in the project sees Gloo.
#include "model/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <map>
#include <sstream>

#include "common/errors.h"

namespace brainage::model {
namespace {

/// First line of an exception's text, without LibTorch's C++ backtrace.
std::string first_line(const std::exception& error) {
  std::string text;
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) {
    text = c10_error->what_without_backtrace();
  } else {
    text = error.what();
  }
  const auto newline = text.find('\n');
  if (newline != std::string::npos) text.resize(newline);
  return text;
}

int parse_int_variable(const char* name, const char* value) {
  std::string text(value);
  std::size_t used = 0;
  int parsed = 0;
  try {
    parsed = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size())
    throw UsageError(std::string(name) + "='" + text + "': environment variable must be an integer");
  return parsed;
}

/// Overrides `field` from the first of `names` that is set.
void read_int(std::initializer_list<const char*> names, int& field) {
  for (const char* name : names) {
    if (const char* value = std::getenv(name)) {
      field = parse_int_variable(name, value);
      return;
    }
  }
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

// ---- options ---------------------------------------------------------------------------

void DistributedOptions::validate() const {
  if (world_size < 1)
    throw UsageError("world size " + std::to_string(world_size) + ": must be at least 1");
  if (rank < 0 || rank >= world_size)
    throw UsageError("rank " + std::to_string(rank) + ": must be in [0, " + std::to_string(world_size) +
                     ") for world size " + std::to_string(world_size));
  if (master_port < 1 || master_port > 65535)
    throw UsageError("master port " + std::to_string(master_port) + ": must be in [1, 65535]");
  if (master_addr.empty()) throw UsageError("master address: must not be empty");
  if (timeout.count() <= 0)
    throw UsageError("distributed timeout " + std::to_string(timeout.count()) + " s: must be positive");
  if (bucket_mib < 1) throw UsageError("gradient bucket size 0 MiB: must be at least 1 MiB");
  if (local_rank < 0) throw UsageError("local rank " + std::to_string(local_rank) + ": must be >= 0");
}

DistributedOptions DistributedOptions::from_environment(const DistributedOptions& defaults) {
  DistributedOptions options = defaults;
  read_int({"WORLD_SIZE", "SLURM_NTASKS"}, options.world_size);
  read_int({"RANK", "SLURM_PROCID"}, options.rank);
  read_int({"LOCAL_RANK", "SLURM_LOCALID"}, options.local_rank);
  read_int({"MASTER_PORT"}, options.master_port);
  if (const char* addr = std::getenv("MASTER_ADDR")) options.master_addr = addr;
  return options;
}

DistributedOptions DistributedOptions::from_environment() { return from_environment(DistributedOptions{}); }

// ---- the process group -----------------------------------------------------------------

struct DistributedContext::Group {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::chrono::milliseconds timeout{0};
  std::string where;  // "tcp://host:port rank r of N"

  /// Waits for `work`; any failure (a peer closed its sockets, the timeout passed)
  /// becomes one ModelError line naming the job, the operation and the timeout.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* operation) const {
    try {
      work->wait(timeout);
    } catch (const std::exception& error) {
      throw ModelError(where + ": " + operation +
                       " failed: a peer rank died or stopped responding (timeout " +
                       std::to_string(timeout.count() / 1000) + " s): " + first_line(error));
    }
  }

  c10::intrusive_ptr<c10d::Work> start(const char* operation, const std::function<c10::intrusive_ptr<c10d::Work>()>& call) const {
    try {
      return call();
    } catch (const std::exception& error) {
      throw ModelError(where + ": " + operation + " failed: " + first_line(error));
    }
  }
};

DistributedContext::DistributedContext(const DistributedOptions& options) : options_(options) {
  options_.validate();
  if (options_.world_size == 1) return;

  auto group = std::make_unique<Group>();
  group->timeout = std::chrono::duration_cast<std::chrono::milliseconds>(options_.timeout);
  const std::string address = "tcp://" + options_.master_addr + ":" + std::to_string(options_.master_port);
  group->where = address + " rank " + std::to_string(options_.rank) + " of " + std::to_string(options_.world_size);

  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(options_.master_port);
    store_options.isServer = options_.rank == 0;
    store_options.numWorkers = static_cast<std::size_t>(options_.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = group->timeout;
    group->store = c10::make_intrusive<c10d::TCPStore>(options_.master_addr, store_options);
  } catch (const std::exception& error) {
    throw ModelError(group->where + ": rendezvous failed: not all " + std::to_string(options_.world_size) +
                     " ranks reached the TCPStore within " + std::to_string(options_.timeout.count()) +
                     " s (is rank 0 running and the port free/reachable?): " + first_line(error));
  }

  try {
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(group->timeout);
    // Which network interface the ranks talk over: GLOO_SOCKET_IFNAME (as in PyTorch),
    // loopback for single-machine jobs, else the interface this host's name resolves to.
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
      std::string first(ifname);
      first = first.substr(0, first.find(','));
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(first));
    } else if (is_loopback(options_.master_addr)) {
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    gloo_options->threads = 2;
    group->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(group->store, options_.rank, options_.world_size,
                                                            gloo_options);
  } catch (const std::exception& error) {
    throw ModelError(group->where + ": rendezvous failed: the Gloo process group could not connect all " +
                     std::to_string(options_.world_size) + " ranks within " + std::to_string(options_.timeout.count()) +
                     " s (is every rank started, and is rank 0's address reachable?): " + first_line(error));
  }
  group_ = std::move(group);
}

DistributedContext::~DistributedContext() {
  if (!group_) return;
  group_->pg.reset();  // joins the Gloo worker threads before the store goes away
  group_->store.reset();
}

std::string DistributedContext::backend() const { return group_ ? "gloo" : "none"; }

namespace {

/// Consecutive runs of `tensors` with the same dtype and device, each at most
/// `max_bytes` (a tensor larger than that gets a bucket of its own).
std::vector<std::vector<std::size_t>> make_buckets(const std::vector<torch::Tensor>& tensors, std::size_t max_bytes) {
  std::vector<std::vector<std::size_t>> buckets;
  std::map<std::pair<int, std::string>, std::size_t> open;  // (dtype, device) -> index in buckets
  std::vector<std::size_t> bytes;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const auto key = std::make_pair(static_cast<int>(t.scalar_type()), t.device().str());
    const std::size_t size = static_cast<std::size_t>(t.numel()) * t.element_size();
    auto it = open.find(key);
    if (it == open.end() || (bytes[it->second] > 0 && bytes[it->second] + size > max_bytes)) {
      buckets.emplace_back();
      bytes.push_back(0);
      it = open.insert_or_assign(key, buckets.size() - 1).first;
    }
    buckets[it->second].push_back(i);
    bytes[it->second] += size;
  }
  return buckets;
}

torch::Tensor flatten(const std::vector<torch::Tensor>& tensors, const std::vector<std::size_t>& bucket) {
  std::vector<torch::Tensor> flat;
  flat.reserve(bucket.size());
  for (std::size_t i : bucket) flat.push_back(tensors[i].reshape({-1}));
  return torch::cat(flat);
}

}  // namespace

void DistributedContext::broadcast_parameters(torch::nn::Module& module) {
  if (!group_) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors;
  for (const auto& p : module.parameters()) tensors.push_back(p);
  for (const auto& b : module.buffers()) tensors.push_back(b);
  const auto buckets = make_buckets(tensors, options_.bucket_mib << 20);
  std::vector<torch::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (const auto& bucket : buckets) {
    flats.push_back(flatten(tensors, bucket));
    std::vector<at::Tensor> io{flats.back()};
    c10d::BroadcastOptions opts;
    opts.rootRank = 0;
    works.push_back(group_->start("broadcast of parameters", [&] { return group_->pg->broadcast(io, opts); }));
  }
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    group_->wait(works[b], "broadcast of parameters");
    int64_t offset = 0;
    for (std::size_t i : buckets[b]) {
      auto& t = tensors[i];
      t.copy_(flats[b].narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

void DistributedContext::all_reduce_gradients(torch::nn::Module& module) {
  if (!group_) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> params;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) params.push_back(p);

  // Which parameters have a gradient on some rank: every rank must put the same tensors
  // into the same buckets, and a parameter no rank touched must stay without gradient.
  auto has_grad = torch::zeros({static_cast<int64_t>(params.size())}, torch::kFloat32);
  auto* flag = has_grad.data_ptr<float>();
  for (std::size_t i = 0; i < params.size(); ++i) flag[i] = params[i].grad().defined() ? 1.0f : 0.0f;
  {
    std::vector<at::Tensor> io{has_grad};
    auto work = group_->start("all-reduce of gradients (which exist)", [&] { return group_->pg->allreduce(io); });
    group_->wait(work, "all-reduce of gradients (which exist)");
  }

  std::vector<torch::Tensor> grads;
  std::vector<std::size_t> owner;  // grads[j] belongs to params[owner[j]]
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (flag[i] == 0.0f) continue;
    const auto& g = params[i].grad();
    grads.push_back(g.defined() ? g : torch::zeros_like(params[i]));
    owner.push_back(i);
  }

  const auto buckets = make_buckets(grads, options_.bucket_mib << 20);
  std::vector<torch::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (const auto& bucket : buckets) {  // all buckets in flight, then wait in order
    flats.push_back(flatten(grads, bucket));
    std::vector<at::Tensor> io{flats.back()};
    works.push_back(group_->start("all-reduce of gradients", [&] { return group_->pg->allreduce(io); }));
  }
  const double scale = 1.0 / options_.world_size;
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    group_->wait(works[b], "all-reduce of gradients");
    flats[b].mul_(scale);
    int64_t offset = 0;
    for (std::size_t j : buckets[b]) {
      auto& p = params[owner[j]];
      auto averaged = flats[b].narrow(0, offset, p.numel()).view_as(p);
      if (p.grad().defined()) {
        p.mutable_grad().copy_(averaged);
      } else {
        p.mutable_grad() = averaged.clone();
      }
      offset += p.numel();
    }
  }
}

std::vector<double> DistributedContext::all_reduce_sum(const std::vector<double>& values) {
  if (!group_ || values.empty()) return values;
  auto t = torch::tensor(values, torch::kFloat64);
  std::vector<at::Tensor> io{t};
  auto work = group_->start("all-reduce of metrics", [&] { return group_->pg->allreduce(io); });
  group_->wait(work, "all-reduce of metrics");
  const double* data = t.data_ptr<double>();
  return std::vector<double>(data, data + values.size());
}

double DistributedContext::all_reduce_mean(double value) {
  return all_reduce_sum({value})[0] / options_.world_size;
}

void DistributedContext::check_same_on_all_ranks(const std::string& what, int64_t value) {
  if (!group_) return;
  auto t = torch::tensor({value, -value}, torch::kInt64);  // max of -v = -min of v
  std::vector<at::Tensor> io{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  auto work = group_->start("consistency check", [&] { return group_->pg->allreduce(io, opts); });
  group_->wait(work, "consistency check");
  const int64_t max = t[0].item<int64_t>();
  const int64_t min = -t[1].item<int64_t>();
  if (max != min)
    throw ModelError(group_->where + ": ranks disagree on " + what + " (this rank " + std::to_string(value) +
                     ", range over ranks [" + std::to_string(min) + ", " + std::to_string(max) +
                     "]): every rank must see the same value");
}

void DistributedContext::barrier() {
  if (!group_) return;
  auto work = group_->start("barrier", [&] { return group_->pg->barrier(); });
  group_->wait(work, "barrier");
}

// ---- sharding --------------------------------------------------------------------------

std::vector<std::size_t> shard_indices(const std::vector<std::size_t>& order, int rank, int world, bool pad) {
  if (world < 1) throw UsageError("world size " + std::to_string(world) + ": must be at least 1");
  if (rank < 0 || rank >= world)
    throw UsageError("rank " + std::to_string(rank) + ": must be in [0, " + std::to_string(world) + ")");
  const std::size_t n = order.size();
  const std::size_t w = static_cast<std::size_t>(world);
  const std::size_t per_rank = pad ? (n + w - 1) / w : 0;
  std::vector<std::size_t> shard;
  if (n == 0) return shard;
  for (std::size_t k = static_cast<std::size_t>(rank);; k += w) {
    if (pad ? shard.size() == per_rank : k >= n) break;
    shard.push_back(order[k % n]);
  }
  return shard;
}

std::vector<std::size_t> shard_indices(std::size_t n, int rank, int world, bool pad) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  return shard_indices(order, rank, world, pad);
}

}  // namespace brainage::model
