#include "common/x_display.h"

#include <cstdlib>

#ifdef BRAINAGE_HAVE_X11
#include <X11/Xlib.h>  // last: it defines macros such as None and Status
#endif

namespace brainage {

bool x_display_available() {
  static const bool available = [] {
    const char* name = std::getenv("DISPLAY");
    if (!name || !*name) return false;
#ifdef BRAINAGE_HAVE_X11
    Display* display = XOpenDisplay(nullptr);
    if (!display) return false;
    XCloseDisplay(display);
#endif
    return true;
  }();
  return available;
}

}  // namespace brainage
