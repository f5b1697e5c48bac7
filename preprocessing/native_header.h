#pragma once
// Native-space outputs that overlay on the input scan in any viewer. ITK writes a NIfTI
// with qform = sform = its own geometry (codes 1); a viewer that reads the input's other
// transform (FSL and nibabel take the sform when its code is > 0, some tools the qform)
// would then show the output shifted against the scan whenever the input's two
// transforms disagree. So native outputs are written by ITK and then given the input's
// own qform and sform: codes, quaternion, offsets, qfac (pixdim[0]), pixdim[1..3] and the
// three srow rows, copied unchanged, on exactly the input's voxel grid.
//
// The input's header travels with the image that load_scan returns (its
// MetaDataDictionary), so anything holding the native image can write "like the input".
// NIfTI-2 inputs never get here: ITK 5.2 cannot read them and load_scan refuses them
// (exit 3). Were they read, the copy would round their float64 transforms to NIfTI-1's
// float32.
#include <filesystem>
#include <optional>
#include <string>

#include "preprocessing/image_types.h"
#include "preprocessing/nifti_header.h"

namespace brainage::preprocessing {

/// Stores `header` in `image`'s MetaDataDictionary (key "brainage.nifti_header").
void attach_nifti_header(itk::ImageBase<3>* image, const NiftiHeader& header);

/// The header attached by attach_nifti_header, or nothing (e.g. a DICOM input, or an image
/// that did not come from load_scan).
std::optional<NiftiHeader> attached_nifti_header(const itk::ImageBase<3>* image);

/// Copies `from`'s qform and sform fields (qform_code, sform_code, quatern_b/c/d,
/// qoffset_x/y/z, pixdim[0..3], srow_x/y/z) into the NIfTI-1 header at the start of
/// `nifti1_bytes` (in this machine's byte order, as ITK writes). Throws OutputError naming `name` when the
/// bytes are not such a NIfTI-1 header or the dimensions differ from `from`'s.
void copy_xforms_into(std::string& nifti1_bytes, const NiftiHeader& from, const std::string& name);

/// Writes `image` atomically to `path` (.nii.gz) with the qform and sform of the file
/// `native_reference` was loaded from (see attached_nifti_header). Without an attached
/// header (DICOM input) it is a plain ITK write. Throws ProcessingError when `image` is not
/// on `native_reference`'s grid (size, and spacing/origin/direction within 1e-4 mm or
/// 1e-5), since the copied header would then misplace it; OutputError when writing fails.
void write_like_input(const MaskType* image, const std::filesystem::path& path,
                      const itk::ImageBase<3>* native_reference);
void write_like_input(const ImageType* image, const std::filesystem::path& path,
                      const itk::ImageBase<3>* native_reference);

}  // namespace brainage::preprocessing
