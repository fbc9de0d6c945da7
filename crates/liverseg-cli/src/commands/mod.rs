//! One module per subcommand.

pub mod convert;
pub mod demo;
pub mod device_check;
pub mod dicom;
pub mod evaluate;
pub mod export_onnx;
pub mod import_monai;
pub mod info;
pub mod models;
pub mod plan;
pub mod predict;
pub mod predict_web;
pub mod preprocess;
pub mod report;
pub mod serve;
pub mod train;
