#pragma once
// The one progress display of brainage (cohort subjects, training scans). On a terminal
// one line redrawn in place
//   [#########...............]  12/38  31%  1m02s elapsed, ETA 2m10s, 1 failed
//   epoch 3/300 [#########...............]  40/96  41%  12s elapsed, ETA 17s  loss 0.4312
// elsewhere (batch logs) one plain line per finished item. Thread-safe.
#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <mutex>
#include <string>

namespace brainage {

/// "2m10s", "1h02m", "45s".
std::string format_duration(double seconds);

class ProgressBar {
 public:
  /// `total` items to run; `enabled` = false prints nothing. `interactive` redraws one
  /// line with '\r' (callers pass whether the stream is a terminal). `prefix` starts the
  /// line (e.g. "epoch 3/300"); default none.
  ProgressBar(std::size_t total, bool enabled, std::ostream& out, bool interactive, std::string prefix = {});
  /// One item finished (`failed` when it failed); `label` names it in batch logs.
  void tick(const std::string& label, bool failed);
  /// `done` items finished so far; `detail` (e.g. "loss 0.4312") ends the line.
  void update(std::size_t done, const std::string& detail);
  /// Ends the line (interactive: a newline; `erase` = true wipes it instead).
  void finish(bool erase = false);

 private:
  void draw(const std::string& label, bool failed);
  std::size_t total_, done_ = 0, failed_ = 0;
  bool enabled_, interactive_;
  std::ostream& out_;
  std::string prefix_, detail_;
  std::size_t drawn_width_ = 0;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace brainage
