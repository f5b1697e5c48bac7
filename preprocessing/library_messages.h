#pragma once
// Messages that ITK and GDCM print on their own (ITK's OutputWindow: "WARNING: In
// .../itkGDCMSeriesFileNames.cxx ... No Series were found"; GDCM's Trace: "Error: In
// .../gdcmReader.cxx ... Cannot find DICOM type"). Every failure they describe also
// reaches brainage as an exception or a return value, and brainage reports it as one line
// naming the file and the rule (README, exit codes); the libraries' own lines before it
// only bury that line. They are silenced unless the environment variable
// BRAINAGE_LIBRARY_MESSAGES is set to 1, for debugging a reader.

namespace brainage::preprocessing {

/// Turns ITK's global warning display and GDCM's debug, warning and error traces off
/// (itk::Object::GlobalWarningDisplayOff, gdcm::Trace::{Debug,Warning,Error}Off), or
/// leaves them on when BRAINAGE_LIBRARY_MESSAGES=1. Process-wide; called once per process
/// by ensure_itk_factories() (itk_factories.h). Never throws.
void configure_library_messages();

}  // namespace brainage::preprocessing
