//! DICOM reading and writing (filled in by the DICOM work).
