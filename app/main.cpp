// brainage: MRI brain-age prediction. main() only dispatches and reports errors; each
// subcommand is a library function in app/<name>_command.cpp.
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli/cli.h"
#include "common/errors.h"

namespace {

void print_usage() {
  std::cout << "usage: brainage <subcommand> [options]   (brainage <subcommand> --help for details)\n\n"
               "subcommands:\n";
  for (const auto& sub : brainage::app::subcommands())
    std::cout << "  " << sub.name << std::string(12 - std::string(sub.name).size(), ' ') << sub.summary << "\n";
  std::cout << "\n  --version   build provenance: versions, BLAS and threads\n"
               "  --help      this text\n\n"
               "exit codes: 0 ok, 1 internal error, 2 usage, 3 invalid input, 4 output not writable,\n"
               "            5 processing/QC failed, 6 model/checkpoint error, 7 cohort completed with failures\n";
}

/// LibTorch's OpenMP threads spin while idle unless OMP_WAIT_POLICY=PASSIVE, which on a
/// shared 2-core machine made a forward pass 30x slower (docs/BENCHMARKS.md). libgomp
/// reads the variable when it is loaded, before main(), so set it and re-execute once.
void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
}

int report(const char* kind, const char* message, int code) noexcept {
  std::cerr << "brainage: " << kind << ": " << message << std::endl;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  ensure_passive_openmp(argv);
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
      print_usage();
      return args.empty() ? 2 : 0;
    }
    if (args[0] == "--version" || args[0] == "version") {
      std::cout << brainage::app::version_text();
      return 0;
    }
    for (const auto& sub : brainage::app::subcommands()) {
      if (args[0] == sub.name) {
        brainage::app::configure_all_threads(0);
        return sub.main(std::vector<std::string>(args.begin() + 1, args.end()));
      }
    }
    throw brainage::UsageError("unknown subcommand '" + args[0] + "' (brainage --help lists them)");
  } catch (const brainage::Error& e) {
    return report(e.kind(), e.what(), static_cast<int>(e.code()));
  } catch (const std::bad_alloc&) {
    return report("OutOfMemory", "not enough memory (lower --jobs or the memory budget)", 1);
  } catch (const std::exception& e) {
    return report("InternalError", e.what(), 1);
  } catch (...) {
    return report("InternalError", "unknown exception", 1);
  }
}
