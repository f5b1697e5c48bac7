#include "common/x_display.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#ifdef BRAINAGE_HAVE_X11
#include <X11/Xlib.h>  // last: it defines macros such as None and Status
#endif

namespace brainage {
namespace {

/// DISPLAY is set and (when built with X11) its server answers.
bool display_answers() {
  const char* name = std::getenv("DISPLAY");
  if (!name || !*name) return false;
#ifdef BRAINAGE_HAVE_X11
  Display* display = XOpenDisplay(nullptr);
  if (!display) return false;
  XCloseDisplay(display);
#endif
  return true;
}

pid_t g_xvfb = -1;

void stop_private_xvfb() {
  if (g_xvfb <= 0) return;
  ::kill(g_xvfb, SIGTERM);
  ::waitpid(g_xvfb, nullptr, 0);
  g_xvfb = -1;
}

/// Starts Xvfb on a display number it chooses (-displayfd) and points DISPLAY at it.
bool start_private_xvfb() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (pid == 0) {  // child: only async-signal-safe calls until exec
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    ::fcntl(fds[1], F_SETFD, 0);  // the write end survives exec
    const int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    char fd_text[16];
    int n = fds[1], len = 0;
    char digits[16];
    do {
      digits[len++] = static_cast<char>('0' + n % 10);
      n /= 10;
    } while (n > 0);
    for (int i = 0; i < len; ++i) fd_text[i] = digits[len - 1 - i];
    fd_text[len] = '\0';
    // -noreset: an X server resets when its last client disconnects; the readiness
    // check below is such a client, and a connection made during the reset fails
    // ("bad X server connection", seen when several brainage processes start at once).
    ::execlp("Xvfb", "Xvfb", "-displayfd", fd_text, "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-noreset",
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  g_xvfb = pid;
  std::atexit(stop_private_xvfb);
  std::string number;
  pollfd p{fds[0], POLLIN, 0};
  while (number.find('\n') == std::string::npos && ::poll(&p, 1, 30000) > 0) {
    char buf[32];
    const ssize_t got = ::read(fds[0], buf, sizeof buf);
    if (got <= 0) break;
    number.append(buf, static_cast<std::size_t>(got));
  }
  ::close(fds[0]);
  while (!number.empty() && (number.back() == '\n' || number.back() == ' ')) number.pop_back();
  if (number.empty() || number.find_first_not_of("0123456789") != std::string::npos) {
    stop_private_xvfb();
    return false;
  }
  ::setenv("DISPLAY", (":" + number).c_str(), 1);
  return true;
}

}  // namespace

bool ensure_x_display() {
  static const bool available = [] {
    if (display_answers()) return true;
    const char* off = std::getenv("BRAINAGE_NO_XVFB");
    if (off && *off) return false;
    return start_private_xvfb() && display_answers();
  }();
  return available;
}

bool x_display_available() { return ensure_x_display(); }

}  // namespace brainage
