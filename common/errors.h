#pragma once
// Typed exceptions shared by every stage. Each carries the process exit code that
// `brainage` returns when it reaches main(); the codes are documented in README.md.
#include <stdexcept>
#include <string>

namespace brainage {

enum class ExitCode : int {
  kSuccess = 0,
  kInternal = 1,          // an unexpected failure (a bug): please report it
  kUsage = 2,             // bad command line
  kInvalidInput = 3,      // an input file breaks a rule (missing, corrupt, wrong shape, ...)
  kOutput = 4,            // an output cannot be written
  kProcessingFailed = 5,  // the pipeline ran but a QC check failed (registration, mask)
  kModel = 6,             // a checkpoint is missing, corrupt or does not fit
  kPartialFailure = 7,    // a cohort completed, but some subjects failed
};

/// Base of every error brainage throws on purpose.
class Error : public std::runtime_error {
 public:
  Error(const std::string& message, ExitCode code) : std::runtime_error(message), code_(code) {}
  ExitCode code() const noexcept { return code_; }
  virtual const char* kind() const noexcept { return "Error"; }

 private:
  ExitCode code_;
};

#define BRAINAGE_DEFINE_ERROR(Name, Code)                                      \
  class Name : public Error {                                                  \
   public:                                                                     \
    explicit Name(const std::string& message) : Error(message, Code) {}        \
    const char* kind() const noexcept override { return #Name; }               \
  };

BRAINAGE_DEFINE_ERROR(UsageError, ExitCode::kUsage)
BRAINAGE_DEFINE_ERROR(InvalidInputError, ExitCode::kInvalidInput)
BRAINAGE_DEFINE_ERROR(OutputError, ExitCode::kOutput)
BRAINAGE_DEFINE_ERROR(ProcessingError, ExitCode::kProcessingFailed)
BRAINAGE_DEFINE_ERROR(ModelError, ExitCode::kModel)

#undef BRAINAGE_DEFINE_ERROR

}  // namespace brainage
