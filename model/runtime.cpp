#include "model/runtime.h"

#include <dlfcn.h>
#include <link.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <thread>

namespace brainage::model {
namespace {

using openblas_set_threads_fn = void (*)(int);
using openblas_get_threads_fn = int (*)();
using openblas_get_config_fn = char* (*)();

template <typename Fn>
Fn find_symbol(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, name));
}

/// Path of the loaded shared object that provides `dgemm_`, i.e. the BLAS in use.
std::string loaded_blas_path() {
  void* sym = ::dlsym(RTLD_DEFAULT, "dgemm_");
  Dl_info info{};
  if (sym && ::dladdr(sym, &info) && info.dli_fname) return info.dli_fname;
  return {};
}

}  // namespace

int configure_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  if (auto set = find_symbol<openblas_set_threads_fn>("openblas_set_num_threads")) set(threads);
  return torch::get_num_threads();
}

ThreadCountGuard::ThreadCountGuard(int threads) : previous_(torch::get_num_threads()) {
  if (threads != previous_) configure_threads(threads);
}

ThreadCountGuard::~ThreadCountGuard() {
  if (torch::get_num_threads() != previous_) configure_threads(previous_);
}

std::string blas_description() {
  const std::string path = loaded_blas_path();
  if (auto config = find_symbol<openblas_get_config_fn>("openblas_get_config")) {
    std::string text = "OpenBLAS (";
    text += config();
    if (auto get = find_symbol<openblas_get_threads_fn>("openblas_get_num_threads"))
      text += ", " + std::to_string(get()) + " threads";
    text += ") " + path;
    return text;
  }
  if (path.find("openblas") != std::string::npos) return "OpenBLAS " + path;
  if (path.empty()) return "unknown (no dgemm_ symbol loaded)";
  return "reference BLAS " + path + " (slow: install libopenblas0-pthread)";
}

std::string torch_version() { return TORCH_VERSION; }

bool cuda_available() { return torch::cuda::is_available(); }

}  // namespace brainage::model
