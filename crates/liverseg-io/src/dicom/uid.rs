//! Fresh DICOM unique identifiers under the `2.25.<UUID as decimal>` root.
//!
//! DICOM PS3.5 §B.2 lets anyone mint UIDs without a registered root by
//! writing a UUID (ISO/IEC 9834-8) as one unsigned decimal integer after
//! `2.25.`. The 128 bits come from std's `RandomState`, whose SipHash keys
//! the operating system seeds randomly per process, mixed with the time, the
//! process id and a counter, so no random-number crate is needed.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The root under which UUID-derived UIDs live (PS3.5 §B.2).
const UUID_ROOT: &str = "2.25.";

/// The largest length of a UID value (PS3.5 §9.1).
pub(crate) const MAX_UID_LEN: usize = 64;

/// Returns a new, globally unique DICOM UID such as
/// `2.25.241097452095717345512245371826093843474`.
///
/// The number is a version-4 (random) UUID written in decimal, so the UID
/// is at most 44 characters long and its last component has no leading
/// zero, as PS3.5 §9.1 requires.
pub fn new_uid() -> String {
    format!("{UUID_ROOT}{}", random_uuid_v4())
}

/// 128 fresh random bits with the UUID version (4) and variant (10x) bits
/// set, as RFC 9562 prescribes for random UUIDs.
fn random_uuid_v4() -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let pid = std::process::id();
    // Each `RandomState::new()` carries fresh keys (random per process and
    // per thread, then incremented per call), so two hashers give two
    // independent 64-bit halves even for identical input.
    let half = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u64(count);
        h.write_u128(nanos);
        h.write_u32(pid);
        h.finish()
    };
    let bits = (u128::from(half(0x5eed_0001)) << 64) | u128::from(half(0x5eed_0002));
    // Version 4 in bits 76..80, variant 0b10 in bits 62..64.
    let bits = (bits & !(0xF_u128 << 76)) | (0x4_u128 << 76);
    (bits & !(0x3_u128 << 62)) | (0x2_u128 << 62)
}

/// True when `uid` is a syntactically valid DICOM UID: 1 to 64 characters,
/// dot-separated non-empty numeric components, none with a leading zero
/// (a lone `0` is allowed).
pub(crate) fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= MAX_UID_LEN
        && uid.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c == "0" || !c.starts_with('0'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn uids_are_valid_and_distinct() {
        let uids: Vec<String> = (0..2000).map(|_| new_uid()).collect();
        for u in &uids {
            assert!(is_valid_uid(u), "{u}");
            assert!(u.starts_with("2.25."), "{u}");
            assert!(u.len() <= 44, "{u}");
        }
        let set: HashSet<&String> = uids.iter().collect();
        assert_eq!(set.len(), uids.len());
    }

    #[test]
    fn uuid_version_and_variant_bits_are_set() {
        for _ in 0..100 {
            let u = new_uid();
            let n: u128 = u[UUID_ROOT.len()..].parse().unwrap();
            assert_eq!((n >> 76) & 0xF, 4, "{u}");
            assert_eq!((n >> 62) & 0x3, 2, "{u}");
        }
    }

    #[test]
    fn validator_rejects_bad_uids() {
        assert!(is_valid_uid("1.2.840.10008.5.1.4.1.1.2"));
        assert!(is_valid_uid("2.25.0"));
        assert!(!is_valid_uid(""));
        assert!(!is_valid_uid("1.02.3"));
        assert!(!is_valid_uid("1..3"));
        assert!(!is_valid_uid("1.2.a"));
        assert!(!is_valid_uid(&format!("1.{}", "2".repeat(63))));
    }
}
