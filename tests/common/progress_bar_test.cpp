// The progress display: batch logs get one line per finished item; a terminal gets one line
// redrawn in place, with the caller's prefix and detail, erased or ended at the finish.
#include "common/progress_bar.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

TEST(ProgressBar, BatchLogsGetOneLinePerItem) {
  std::ostringstream out;
  brainage::ProgressBar bar(3, true, out, /*interactive=*/false);
  bar.tick("sub-01", false);
  bar.tick("sub-02", true);
  bar.finish();
  const std::string text = out.str();
  EXPECT_NE(text.find("1/3  33%"), std::string::npos) << text;
  EXPECT_NE(text.find("2/3  66%"), std::string::npos) << text;
  EXPECT_NE(text.find("1 failed  (sub-02: failed)"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
}

TEST(ProgressBar, TerminalRedrawsOneLineWithPrefixAndDetail) {
  std::ostringstream out;
  brainage::ProgressBar bar(4, true, out, /*interactive=*/true, "epoch 3/300");
  bar.update(2, "loss 0.4312");
  bar.finish(/*erase=*/true);
  const std::string text = out.str();
  EXPECT_NE(text.find("\repoch 3/300 [############............] 2/4  50%"), std::string::npos) << text;
  EXPECT_NE(text.find("loss 0.4312"), std::string::npos) << text;
  EXPECT_EQ(text.find('\n'), std::string::npos) << "erased, not ended";
  EXPECT_EQ(text.back(), '\r');
}

TEST(ProgressBar, DisabledPrintsNothingAndDurationsReadNaturally) {
  std::ostringstream out;
  brainage::ProgressBar bar(2, false, out, true);
  bar.tick("a", false);
  bar.finish();
  EXPECT_TRUE(out.str().empty());
  EXPECT_EQ(brainage::format_duration(45), "45s");
  EXPECT_EQ(brainage::format_duration(130), "2m10s");
  EXPECT_EQ(brainage::format_duration(3720), "1h02m");
}
