#include "app/cli/cli.h"

#include <itkMultiThreaderBase.h>

#include <iostream>
#include <sstream>

#include "common/build_info.h"
#include "common/errors.h"
#include "model/runtime.h"
#include "preprocessing/itk_version.h"
#include "viz/vtk_version.h"

namespace brainage::app {

std::optional<po::variables_map> parse_command_line(const std::string& subcommand, const std::string& usage,
                                                    const std::vector<std::string>& args,
                                                    const po::options_description& options,
                                                    const po::positional_options_description& positional) {
  po::options_description all(options);
  all.add_options()("help,h", "show this help");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: brainage " << subcommand << " " << usage << "\n\n" << all << "\n";
      return std::nullopt;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError("brainage " + subcommand + ": " + e.what() + " (see brainage " + subcommand + " --help)");
  }
  return vm;
}

int configure_all_threads(int threads) {
  const int n = model::configure_threads(threads);
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(n);
  return n;
}

std::string version_text() {
  std::ostringstream o;
  o << "brainage " << build_info::kVersion << " (git " << build_info::kGitSha << ", " << build_info::kBuildType
    << ")\n"
    << "  compiler  " << build_info::kCompiler << "\n"
    << "  ITK       " << preprocessing::itk_version() << "\n"
    << "  VTK       " << viz::vtk_version() << "\n"
    << "  LibTorch  " << model::torch_version() << (model::cuda_available() ? " (CUDA device present)" : " (CPU)")
    << "\n"
    << "  CUDA      " << build_info::kCudaVersion << " (routing kernels "
    << (std::string(build_info::kCudaVersion) == "none" ? "not compiled" : "compiled") << ")\n"
    << "  BLAS      " << model::blas_description() << "\n"
    << "  threads   " << model::configure_threads(0) << " (LibTorch intra-op)\n";
  return o.str();
}

void require_model_named(const std::string& model) {
  if (model.empty())
    throw UsageError("--model is empty (an unset shell variable?): name a checkpoint, or leave --model out for the default");
}

}  // namespace brainage::app
