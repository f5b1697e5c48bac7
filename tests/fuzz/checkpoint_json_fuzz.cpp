// libFuzzer target: the checkpoint metadata loader (format, version, model options,
// checksums). Any bytes as model.json must load or throw ModelError. Built by scripts/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/errors.h"
#include "model/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("brainage-fuzz-ckpt-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  std::ofstream(dir / "model.json", std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    (void)brainage::model::read_checkpoint_info(dir / "model.json");
  } catch (const brainage::Error&) {
  }
  return 0;
}
