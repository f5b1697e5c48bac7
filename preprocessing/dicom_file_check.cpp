#include "preprocessing/dicom_file_check.h"

#include <gdcmExplicitDataElement.h>
#include <gdcmImplicitDataElement.h>
#include <gdcmReader.h>

#include "common/errors.h"

namespace brainage::preprocessing {

std::int64_t dicom_bytes_missing(const std::filesystem::path& file) {
  gdcm::Reader reader;
  reader.SetFileName(file.string().c_str());
  if (!reader.Read()) throw InvalidInputError(file.string() + ": not a readable DICOM file");
  const gdcm::File& parsed = reader.GetFile();
  const gdcm::DataSet& data = parsed.GetDataSet();
  const bool implicit =
      parsed.GetHeader().GetDataSetTransferSyntax().GetNegociatedType() == gdcm::TransferSyntax::Implicit;
  const std::int64_t data_bytes = implicit ? static_cast<std::int64_t>(data.GetLength<gdcm::ImplicitDataElement>())
                                           : static_cast<std::int64_t>(data.GetLength<gdcm::ExplicitDataElement>());
  const std::int64_t encoded = static_cast<std::int64_t>(parsed.GetHeader().GetFullLength()) + data_bytes;
  std::error_code ec;
  const auto size = static_cast<std::int64_t>(std::filesystem::file_size(file, ec));
  if (ec) throw InvalidInputError(file.string() + ": cannot read its size (" + ec.message() + ")");
  return encoded > size ? encoded - size : 0;
}

}  // namespace brainage::preprocessing
