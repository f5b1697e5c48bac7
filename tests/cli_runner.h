#pragma once
// Runs the `brainage` executable (BRAINAGE_EXE, set by tests/app/CMakeLists.txt) the way a
// user does, capturing stdout + stderr and the exit code.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace brainage::testing {

struct CliResult {
  int code;         // exit code, -1 when the process did not exit normally
  std::string out;  // stdout + stderr
};

/// `env_prefix` goes before the executable, e.g. "env -u DISPLAY" for a headless run.
inline CliResult run_brainage_env(const std::string& env_prefix, const std::string& args) {
  const std::string cmd = env_prefix + " \"" + BRAINAGE_EXE + "\" " + args + " 2>&1";
  CliResult r{-1, {}};
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (pipe && std::fgets(buf.data(), buf.size(), pipe)) r.out += buf.data();
  const int status = pipe ? ::pclose(pipe) : -1;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline CliResult run_brainage(const std::string& args) { return run_brainage_env("", args); }

}  // namespace brainage::testing
