//! The memory budget: every buffer whose size comes from an input (a
//! header's dimensions, a preset's spacing, a model's channel count, a
//! sliding window) is checked against it before it is allocated, so an
//! absurd or hostile input is refused with its figure instead of aborting
//! the process when the allocation fails.
//!
//! The budget is, in order: what [`set_limit`] was given (the CLI's
//! `--memory-limit`), the `LIVERSEG_MEMORY_LIMIT` variable, or the memory
//! this machine lets the process use (the smaller of physical memory and
//! the cgroup's `memory.max`). Sizes accept `K`, `M`, `G` and `T` suffixes
//! (powers of 1024): `LIVERSEG_MEMORY_LIMIT=8G`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that sets the budget.
pub const LIMIT_VAR: &str = "LIVERSEG_MEMORY_LIMIT";

/// 0 while unset.
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// A buffer that would not fit the budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverBudget {
    /// What the buffer is for ("voxels of the resampled grid").
    pub what: String,
    /// How many elements it would hold (saturating).
    pub count: u128,
    /// Bytes per element.
    pub element_bytes: u64,
    /// The budget in bytes.
    pub limit: u64,
}

impl fmt::Display for OverBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} would take {} ({} × {} bytes), over the memory budget of {}",
            self.what,
            human(self.count.saturating_mul(u128::from(self.element_bytes))),
            self.count,
            self.element_bytes,
            human(u128::from(self.limit))
        )
    }
}

impl std::error::Error for OverBudget {}

/// `1234567890` → `"1.15 GiB"`.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Parses `"8G"`, `"512M"`, `"1.5G"` or a plain byte count.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, shift) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return None,
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let v: f64 = num.trim().parse().ok()?;
    let bytes = v * f64::from(1u32 << (shift / 2)) * f64::from(1u32 << (shift - shift / 2));
    (v.is_finite() && v > 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Sets the budget for this process (overrides the variable).
pub fn set_limit(bytes: u64) {
    LIMIT.store(bytes.max(1), Ordering::Relaxed);
}

/// The budget in bytes.
pub fn limit() -> u64 {
    let set = LIMIT.load(Ordering::Relaxed);
    if set != 0 {
        return set;
    }
    let derived = std::env::var(LIMIT_VAR)
        .ok()
        .and_then(|v| parse_size(&v))
        .unwrap_or_else(machine_memory);
    // Racing first callers compute the same value.
    LIMIT.store(derived, Ordering::Relaxed);
    derived
}

/// Fails when `count` elements of `element_bytes` each exceed the budget.
pub fn check(what: impl Into<String>, count: u128, element_bytes: u64) -> Result<(), OverBudget> {
    let limit = limit();
    if count.saturating_mul(u128::from(element_bytes)) > u128::from(limit) {
        return Err(OverBudget {
            what: what.into(),
            count,
            element_bytes,
            limit,
        });
    }
    Ok(())
}

/// [`check`] for a 3-D grid: the product of `dims` (saturating).
pub fn check_grid(
    what: impl Into<String>,
    dims: &[usize],
    element_bytes: u64,
) -> Result<(), OverBudget> {
    let count = dims
        .iter()
        .fold(1u128, |acc, &d| acc.saturating_mul(d as u128));
    check(what, count, element_bytes)
}

/// Physical memory, or the cgroup's limit when smaller; 16 GiB when
/// neither can be read.
fn machine_memory() -> u64 {
    let physical = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match (physical, cgroup) {
        (Some(p), Some(c)) => p.min(c),
        (Some(p), None) => p,
        (None, Some(c)) => c,
        (None, None) => 16 << 30,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1.5K"), Some(1536));
        assert_eq!(parse_size("1000"), Some(1000));
        for bad in ["", "G", "-1G", "0", "8X", "nan", "1e30T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn over_budget_names_the_figures() {
        let e = OverBudget {
            what: "voxels of ct.nii".into(),
            count: 10_000_000_000,
            element_bytes: 4,
            limit: 16 << 30,
        };
        let s = e.to_string();
        assert!(
            s.starts_with("voxels of ct.nii would take 37.25 GiB (10000000000 × 4 bytes)"),
            "{s}"
        );
        assert!(s.contains("16.00 GiB"), "{s}");
        assert!(machine_memory() > 1 << 20);
        assert!(check_grid("x", &[usize::MAX, usize::MAX, 2], 4).is_err());
        assert!(check_grid("x", &[2, 2, 2], 4).is_ok());
    }
}
