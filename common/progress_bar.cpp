#include "common/progress_bar.h"

#include <algorithm>
#include <cstdio>
#include <ostream>

namespace brainage {

std::string format_duration(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

ProgressBar::ProgressBar(std::size_t total, bool enabled, std::ostream& out, bool interactive, std::string prefix)
    : total_(total), enabled_(enabled && total > 0), interactive_(interactive), out_(out), prefix_(std::move(prefix)),
      start_(std::chrono::steady_clock::now()) {
  if (enabled_ && interactive_) draw("", false);
}

void ProgressBar::tick(const std::string& label, bool failed) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++done_;
  if (failed) ++failed_;
  if (enabled_) draw(label, failed);
}

void ProgressBar::update(std::size_t done, const std::string& detail) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ = done;
  detail_ = detail;
  if (enabled_) draw(detail, false);
}

void ProgressBar::draw(const std::string& label, bool failed) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fraction = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  std::string eta = done_ ? format_duration(elapsed / static_cast<double>(done_) * static_cast<double>(total_ - done_))
                          : std::string("?");
  char counts[160];
  std::snprintf(counts, sizeof counts, "%zu/%zu %3d%%  %s elapsed, ETA %s", done_, total_,
                static_cast<int>(fraction * 100 + 1e-9), format_duration(elapsed).c_str(), eta.c_str());
  std::string text = counts;
  if (failed_) text += ", " + std::to_string(failed_) + " failed";
  if (!detail_.empty()) text += "  " + detail_;
  const std::string head = prefix_.empty() ? std::string() : prefix_ + " ";
  if (interactive_) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(fraction * kWidth);
    const std::string line = head + "[" + std::string(static_cast<std::size_t>(filled), '#') +
                             std::string(static_cast<std::size_t>(kWidth - filled), '.') + "] " + text + "   ";
    drawn_width_ = std::max(drawn_width_, line.size());
    out_ << "\r" << line << std::flush;
  } else {
    out_ << "brainage: " << head << text << "  (" << label << (failed ? ": failed" : "") << ")\n" << std::flush;
  }
}

void ProgressBar::finish(bool erase) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (enabled_ && interactive_) {
    if (erase)
      out_ << "\r" << std::string(drawn_width_, ' ') << "\r" << std::flush;
    else
      out_ << "\n" << std::flush;
  }
  enabled_ = false;
}

}  // namespace brainage
