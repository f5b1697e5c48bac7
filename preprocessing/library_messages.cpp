#include "preprocessing/library_messages.h"

#include <gdcmTrace.h>
#include <itkObject.h>

#include <cstdlib>
#include <cstring>

namespace brainage::preprocessing {

void configure_library_messages() {
  const char* keep = std::getenv("BRAINAGE_LIBRARY_MESSAGES");
  if (keep != nullptr && std::strcmp(keep, "1") == 0) return;
  itk::Object::GlobalWarningDisplayOff();
  gdcm::Trace::DebugOff();
  gdcm::Trace::WarningOff();
  gdcm::Trace::ErrorOff();
}

}  // namespace brainage::preprocessing
