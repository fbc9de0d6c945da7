//! liverseg in a hospital's network.
//!
//! [`dicomweb`]: a DICOMweb client that finds series with QIDO-RS,
//! retrieves them with WADO-RS straight into files (never the whole series
//! in memory), and stores results with STOW-RS, over HTTPS (rustls) or
//! plain HTTP to this machine only, with credentials from the environment
//! or a file that never appear in a log or an error.
//!
//! ```no_run
//! use liverseg_net::dicomweb::{Client, Credentials, Resource};
//! # fn main() -> liverseg_net::Result<()> {
//! let client = Client::new(Credentials::from_env()?)?;
//! let Resource::Series(series) =
//!     Resource::parse("http://localhost:8042/dicom-web/studies/1.2.3/series/1.2.3.4")?
//! else {
//!     unreachable!()
//! };
//! let files = client.retrieve_series(&series, std::path::Path::new("series"), &Default::default())?;
//! println!("{} instances", files.len());
//! # Ok(()) }
//! ```

pub mod dicomweb;
mod error;
pub mod node;

pub use error::{Error, Result};
