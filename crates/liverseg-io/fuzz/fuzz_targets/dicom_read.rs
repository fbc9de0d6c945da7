//! Fuzz target for the DICOM readers: any bytes given to `dicom::probe`,
//! `dicom::read` and `dicom::read_seg` must give a value or an error, never
//! a panic, and every image that reads must survive a write as a CT series
//! and a read back (same grid, same values up to the 16-bit rescale step).

#![no_main]

use libfuzzer_sys::fuzz_target;
use liverseg_io::dicom::{self, ReadOptions, WriteSeriesOptions};
use liverseg_io::{Overwrite, Volume};
use std::path::PathBuf;
use std::sync::OnceLock;

fn workdir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("liverseg-fuzz-dicom-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

/// libfuzzer-sys installs a panic hook that aborts before unwinding, which
/// would turn the codec panics that the reader deliberately catches (and
/// reports as errors) into findings. The hook is replaced once by a silent
/// one: a panic that escapes the reader still reaches the harness, which
/// aborts on it.
fn let_caught_panics_unwind() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

fuzz_target!(|data: &[u8]| {
    let_caught_panics_unwind();
    let path = workdir().join("input.dcm");
    std::fs::write(&path, data).expect("write input");
    let _ = dicom::probe(&path);
    let _ = dicom::read_seg(&path, None);
    let Ok(vol) = dicom::read::<f32>(&path, &ReadOptions::default()) else {
        return;
    };
    if vol.len() > 1 << 16 {
        return;
    }
    let series = workdir().join("series");
    let opts = WriteSeriesOptions { overwrite: Overwrite::Allow, ..Default::default() };
    // Sheared grids and non-finite values are refused by the writer: fine.
    if dicom::write_series(&series, &vol, &opts).is_err() {
        return;
    }
    let back: Volume<f32> = dicom::read(&series, &ReadOptions::default()).expect("our own series reads back");
    assert_eq!(back.dims(), vol.dims());
    assert!(back.affine().max_abs_diff(vol.affine()) < 1e-3 * (1.0 + vol.affine().0.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()))));
    let s = vol.stats();
    let step = ((s.max - s.min) / 65535.0).max(0.0);
    for (a, b) in vol.data().iter().zip(back.data()) {
        assert!((f64::from(*a) - f64::from(*b)).abs() <= step + 1e-3 * f64::from(a.abs()).max(1.0), "{a} vs {b}");
    }
});
