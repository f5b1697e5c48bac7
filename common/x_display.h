#pragma once
// Whether an X display can be opened. Debian's VTK renders on-screen contexts through X11
// and abort()s the whole process when DISPLAY names a server that is gone, so every
// renderer asks this first (headless machines run under `xvfb-run -a`).
namespace brainage {

/// DISPLAY is set and (when built with X11) the server answers. Checked once per process.
bool x_display_available();

}  // namespace brainage
