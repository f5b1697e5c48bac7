#pragma once
// ITK's object factories (image and transform IO, and bias_correction.h's override of N4's
// B-spline fit) initialised once per process, before any two threads can ask for one; the
// libraries' own console messages are configured at the same time (library_messages.h).

namespace brainage::preprocessing {

/// Initialises ITK's global factory list on first call (std::call_once); later calls do
/// nothing. ITK 5.2 builds that list lazily on the first factory request and not
/// thread-safely: two `evaluate --jobs 2` workers reading their first scans at once could
/// get "Could not create IO object" or corrupt the heap (measured: 2 of 20 runs of
/// CohortEvaluation.BadRowsAreRecordedAndTheRestFinishes). Every reader calls it. Never throws.
void ensure_itk_factories();

}  // namespace brainage::preprocessing
