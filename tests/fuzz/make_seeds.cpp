// Writes the seed corpus for the NIfTI fuzzer (valid, gzipped, 4D, NIfTI-like) into argv[1].
#include <filesystem>
#include <string>

#include "tests/nifti_fixture.h"

int main(int argc, char** argv) {
  using namespace brainage::testing;
  const std::filesystem::path dir = argc > 1 ? argv[1] : "seeds";
  std::filesystem::create_directories(dir);
  NiftiSpec small;
  small.dims = {4, 4, 4};
  write_bytes(dir / "valid.nii", nifti_bytes(small, float_voxels(small)), false);
  write_bytes(dir / "valid.nii.gz", nifti_bytes(small, float_voxels(small)), true);
  write_bytes(dir / "nan.nii", nifti_bytes(small, float_voxels(small, 3)), false);
  NiftiSpec four = small;
  four.dims = {4, 4, 4, 2};
  write_bytes(dir / "four.nii", nifti_bytes(four, float_voxels(four)), false);
  NiftiSpec u8 = small;
  u8.datatype = 2;
  u8.bitpix = 8;
  write_bytes(dir / "u8.nii", nifti_bytes(u8, std::string(64, '\x07')), false);
  write_bytes(dir / "header_only.nii", nifti_bytes(small, ""), false);
  return 0;
}
