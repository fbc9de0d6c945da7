//! The device a `--device` value names.

use crate::{Error, Result};
use candle_core::Device;

/// The device a `--device` value names: `cpu`, `cuda` (device 0) or
/// `cuda:N`. A malformed name is a configuration error; a CUDA device that
/// cannot be opened (no GPU, or a build without CUDA) is an
/// [`Error::Device`] with candle's message, on one line.
pub fn device(name: &str) -> Result<Device> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let bad = || Error::Config(format!("device {name:?}: expected cpu or cuda:N"));
    let ordinal = name
        .strip_prefix("cuda")
        .map(|s| s.trim_start_matches(':'))
        .map(|s| {
            if s.is_empty() {
                Ok(0)
            } else {
                s.parse::<usize>()
            }
        })
        .ok_or_else(bad)?
        .map_err(|_| bad())?;
    Device::new_cuda(ordinal).map_err(|e| {
        // candle appends a backtrace to driver errors: keep the message.
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or_default();
        Error::Device(format!("{name}: cannot open the CUDA device: {first}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert!(matches!(device("cpu"), Ok(Device::Cpu)));
        for bad in ["gpu", "cuda:x", "cuda:-1"] {
            assert!(matches!(device(bad), Err(Error::Config(_))), "{bad}");
        }
        // Without a GPU (tests never have one) or without the `cuda`
        // feature, opening a CUDA device fails with a one-line message.
        match device("cuda:1") {
            Err(Error::Device(m)) => {
                assert!(m.starts_with("cuda:1: cannot open the CUDA device"), "{m}");
                assert_eq!(m.lines().count(), 1, "{m}");
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => eprintln!("SKIPPED: a CUDA device opened; the failure path is not exercised"),
        }
    }
}
