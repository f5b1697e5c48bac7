#pragma once
// Progress of a cohort on stderr: on a terminal one line redrawn in place
//   [#########.........]  12/38  31%  1m02s elapsed, ETA 2m10s, 1 failed
// elsewhere (batch logs) one plain line per finished subject. Thread-safe.
#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <mutex>
#include <string>

namespace brainage::cohort {

/// "2m10s", "1h02m", "45s".
std::string format_duration(double seconds);

class ProgressBar {
 public:
  /// `total` subjects to run; `enabled` = false prints nothing. `interactive` redraws one
  /// line with '\r' (default: stderr is a terminal).
  ProgressBar(std::size_t total, bool enabled, std::ostream& out, bool interactive);
  /// One subject finished (`failed` when it failed); `label` names it in batch logs.
  void tick(const std::string& label, bool failed);
  /// Ends the line.
  void finish();

 private:
  void draw(const std::string& label, bool failed);
  std::size_t total_, done_ = 0, failed_ = 0;
  bool enabled_, interactive_;
  std::ostream& out_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace brainage::cohort
