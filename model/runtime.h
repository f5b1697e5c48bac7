#pragma once
// LibTorch runtime set-up and introspection: thread counts and which BLAS is loaded.
#include <string>

namespace brainage::model {

/// Sets LibTorch's intra-op threads (and OpenBLAS's, when loaded) to `threads`;
/// 0 means "all hardware threads". Debian's LibTorch starts at 1 thread otherwise.
/// Returns the count in effect.
int configure_threads(int threads = 0);

/// Runs a scope at `threads` LibTorch/OpenBLAS threads (configure_threads) and restores
/// LibTorch's previous count (OpenBLAS's to the same) when it ends. Process-wide, like
/// configure_threads: hold a lock that keeps other tensor work out meanwhile.
class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int threads);
  ~ThreadCountGuard();
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int previous_;
};

/// The BLAS library LibTorch's matrix products run on, e.g. "OpenBLAS 0.3.21 (pthread, 2 threads)"
/// or "reference BLAS (slow: install libopenblas0-pthread)". Read from the loaded library.
std::string blas_description();

/// "1.13.1" (the LibTorch headers this was compiled against).
std::string torch_version();

/// Whether LibTorch was built with CUDA and a device is present.
bool cuda_available();

}  // namespace brainage::model
