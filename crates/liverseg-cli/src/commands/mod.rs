//! One module per subcommand.

pub mod convert;
pub mod dicom;
pub mod info;
