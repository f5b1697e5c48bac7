// Figures without a display: with DISPLAY unset (a headless server, nobody typed xvfb-run)
// brainage starts a private Xvfb itself and points DISPLAY at it.
#include "common/x_display.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

TEST(XDisplay, StartsAPrivateXvfbWhenNoDisplayIsSet) {
  if (::access("/usr/bin/Xvfb", X_OK) != 0) GTEST_SKIP() << "needs Xvfb (Debian package xvfb)";
  ::unsetenv("DISPLAY");
  ::unsetenv("BRAINAGE_NO_XVFB");
  ASSERT_TRUE(brainage::ensure_x_display());
  const char* display = std::getenv("DISPLAY");
  ASSERT_NE(display, nullptr);
  ASSERT_EQ(display[0], ':') << display;
  // The private server listens on its local socket.
  EXPECT_TRUE(std::filesystem::exists(std::string("/tmp/.X11-unix/X") + (display + 1))) << display;
  EXPECT_TRUE(brainage::x_display_available()) << "asked once per process, the answer stays";
}
