#include "preprocessing/itk_factories.h"

#include <itkObjectFactoryBase.h>

#include <mutex>

#include "preprocessing/bias_correction.h"
#include "preprocessing/library_messages.h"

namespace brainage::preprocessing {

void ensure_itk_factories() {
  static std::once_flag once;
  std::call_once(once, [] {
    itk::ObjectFactoryBase::CreateAllInstance("itkImageIOBase");
    register_bias_fit_factory();
    configure_library_messages();
  });
}

}  // namespace brainage::preprocessing
