#pragma once
// Shared plumbing for the `brainage` subcommands: the registry, option parsing with
// --help, and the provenance text. Each subcommand lives in its own file as
//   int <name>_main(const std::vector<std::string>& args)   // parses, then calls
//   run_<name>(const <Name>Options&)                         // the library function tests call
#include <boost/program_options.hpp>
#include <optional>
#include <string>
#include <vector>

namespace brainage::app {

namespace po = boost::program_options;

struct Subcommand {
  const char* name;
  const char* summary;
  int (*main)(const std::vector<std::string>& args);
};

/// Every subcommand, in the order `brainage --help` lists them.
const std::vector<Subcommand>& subcommands();

/// Parses `args` against `options` (+ positionals). Returns nullopt after printing help
/// when --help was given; throws UsageError naming the problem otherwise.
std::optional<po::variables_map> parse_command_line(const std::string& subcommand, const std::string& usage,
                                                    const std::vector<std::string>& args,
                                                    const po::options_description& options,
                                                    const po::positional_options_description& positional = {});

/// Notifier of a --model option: throws UsageError for an empty value (`--model "$M"` with
/// M unset would otherwise run the default model without a word).
void require_model_named(const std::string& model);

/// The `--version` text: project version, git SHA, compiler, ITK/VTK/LibTorch/CUDA versions,
/// the BLAS LibTorch uses and its thread count.
std::string version_text();

/// Sets LibTorch/OpenBLAS/ITK threads (0 = all cores) and returns the count in effect.
int configure_all_threads(int threads);

}  // namespace brainage::app
