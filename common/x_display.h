#pragma once
// The X display VTK renders through. Debian's VTK 9.1 renders on-screen contexts through
// X11 only (no EGL/OSMesa build) and abort()s the whole process when DISPLAY names a server
// that is gone, so every renderer asks here first. On a headless machine (DISPLAY unset or
// dead) brainage starts a private virtual display itself: Xvfb (Debian xvfb) on a free
// display number, stopped when the process exits; nobody has to type `xvfb-run`.
namespace brainage {

/// Whether an X display answers, starting a private Xvfb when none does (see
/// ensure_x_display). Checked once per process.
bool x_display_available();

/// Makes sure DISPLAY names a server that answers: keeps a working DISPLAY; otherwise, unless
/// $BRAINAGE_NO_XVFB is set, starts `Xvfb -displayfd N -screen 0 1280x1024x24 -nolisten tcp`
/// (it picks a free display number, reported through a pipe; up to 30 s on a loaded machine), sets DISPLAY to
/// it, and stops it at exit (and if this process dies: PR_SET_PDEATHSIG). Returns false when
/// no display can be had (Xvfb missing or failing): renderers then skip with a warning.
/// Sets an environment variable: call it from the main thread before starting workers
/// (the subcommands that render do). Runs once per process; never throws.
bool ensure_x_display();

}  // namespace brainage
