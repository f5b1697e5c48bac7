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

inline CliResult run_brainage(const std::string& args) {
  const std::string cmd = std::string("\"") + BRAINAGE_EXE + "\" " + args + " 2>&1";
  CliResult r{-1, {}};
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (pipe && std::fgets(buf.data(), buf.size(), pipe)) r.out += buf.data();
  const int status = pipe ? ::pclose(pipe) : -1;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace brainage::testing
