#include "preprocessing/itk_factories.h"

#include <itkObjectFactoryBase.h>

#include <mutex>

namespace brainage::preprocessing {

void ensure_itk_factories() {
  static std::once_flag once;
  std::call_once(once, [] { itk::ObjectFactoryBase::CreateAllInstance("itkImageIOBase"); });
}

}  // namespace brainage::preprocessing
