//! Tests of the gzip reader: inflated whole, in place or streaming, it gives
//! what reading the inflated bytes gives, result for result and error for
//! error.

use super::super::test_support::{gz, nii, outcome};
use super::super::{GZIP_MAGIC, WriteOptions, write};
use super::*;
use crate::Affine;

fn gz_outcome<T: Voxel>(
    bytes: &[u8],
    opts: &ReadOptions,
    mode: GzMode,
) -> std::result::Result<Volume<T>, String> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return outcome(bytes, opts);
    }
    read_gz::<T>(Path::new("t.nii"), bytes, opts, mode).map_err(|e| e.to_string())
}

/// The gzip reader, whichever way it inflates, gives what reading the
/// inflated bytes gives.
fn assert_same(raw: &[u8], members: usize, opts: &ReadOptions) {
    let gz = gz(raw, members);
    assert_eq!(outcome::<f32>(&gz, opts), outcome::<f32>(raw, opts));
    assert_eq!(outcome::<i16>(&gz, opts), outcome::<i16>(raw, opts));
    assert_eq!(outcome::<u8>(&gz, opts), outcome::<u8>(raw, opts));
    let streamed = gz_outcome::<f32>(&gz, opts, GzMode::Streaming);
    assert_eq!(streamed, outcome::<f32>(raw, opts));
    let streamed = gz_outcome::<u8>(&gz, opts, GzMode::Streaming);
    assert_eq!(streamed, outcome::<u8>(raw, opts));
}

/// Reads `gz` inflated whole (which must be possible) and streaming:
/// both give `expected`.
fn assert_whole_matches_streaming<T: Voxel>(
    gz: &[u8],
    opts: &ReadOptions,
    expected: &std::result::Result<Volume<T>, String>,
) {
    assert_eq!(&gz_outcome::<T>(gz, opts, GzMode::WholeOnly), expected);
    assert_eq!(&gz_outcome::<T>(gz, opts, GzMode::Streaming), expected);
    assert_eq!(&gz_outcome::<T>(gz, opts, GzMode::Auto), expected);
}

/// `gz` is not inflated whole, and reads (or fails) as streaming does.
fn assert_falls_back(gz: &[u8], opts: &ReadOptions) {
    let declined = gz_outcome::<f32>(gz, opts, GzMode::WholeOnly);
    assert!(
        declined
            .as_ref()
            .is_err_and(|e| e.contains("not inflated whole") || e.contains("gzip")),
        "{declined:?}"
    );
    let streamed = gz_outcome::<f32>(gz, opts, GzMode::Streaming);
    assert_eq!(gz_outcome::<f32>(gz, opts, GzMode::Auto), streamed);
    let streamed = gz_outcome::<u8>(gz, opts, GzMode::Streaming);
    assert_eq!(gz_outcome::<u8>(gz, opts, GzMode::Auto), streamed);
}

/// `gz` (one member) with FHCRC set and a header CRC inserted, correct
/// or not.
fn with_header_crc(gz: &[u8], correct: bool) -> Vec<u8> {
    let mut out = gz[..10].to_vec();
    out[3] |= 1 << 1;
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    let crc16 = crc.sum() as u16 ^ u16::from(!correct);
    out.extend_from_slice(&crc16.to_le_bytes());
    out.extend_from_slice(&gz[10..]);
    out
}

/// Inflates `gz` with flate2 and plans the read of volume `t`.
fn plan_of(gz: &[u8], t: Option<usize>) -> (NiftiHeaderInfo, Plan, u64) {
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut raw)
        .unwrap();
    let info = parse_header(Path::new("t.nii"), &raw).unwrap();
    let plan = volume_plan(Path::new("t.nii"), &info, &ReadOptions { volume: t }).unwrap();
    let end = plan.data_start + plan.total;
    (info, plan, end)
}

#[test]
fn files_of_the_read_type_inflate_straight_into_the_voxels() {
    let dir = tempfile::tempdir().unwrap();
    let dims = [70, 60, 50];
    let n = dims.iter().product::<usize>();
    let one = ReadOptions::default();
    // Each type read as itself: inflated in place, the same volume as
    // streaming gives.
    fn check<T: Voxel>(dir: &Path, vol: &Volume<T>, name: &str) {
        let path = dir.join(name);
        write(&path, vol, &WriteOptions::default()).unwrap();
        let gz = std::fs::read(&path).unwrap();
        let (info, plan, end) = plan_of(&gz, None);
        let voxels = inflate_in_place::<T>(&gz, end, &info, &plan).expect("in place");
        assert_eq!(voxels, vol.data());
        let expected = Ok(vol.clone());
        assert_whole_matches_streaming(&gz, &ReadOptions::default(), &expected);
    }
    let u8s = (0..n).map(|i| (i % 251) as u8).collect();
    check(
        dir.path(),
        &Volume::new(dims, Affine::identity(), u8s).unwrap(),
        "u.nii.gz",
    );
    let i16s = (0..n).map(|i| (i % 3001) as i16 - 1500).collect();
    check(
        dir.path(),
        &Volume::new(dims, Affine::identity(), i16s).unwrap(),
        "i.nii.gz",
    );
    let f32s = (0..n).map(|i| i as f32 * 0.25 - 7.5).collect();
    check(
        dir.path(),
        &Volume::new(dims, Affine::identity(), f32s).unwrap(),
        "f.nii.gz",
    );
    // Another type: not in place (the conversion path reads it).
    let int16 = std::fs::read(dir.path().join("i.nii.gz")).unwrap();
    let (info, plan, end) = plan_of(&int16, None);
    assert!(inflate_in_place::<f32>(&int16, end, &info, &plan).is_none());
    assert!(gz_outcome::<f32>(&int16, &one, GzMode::WholeOnly).is_ok());
    // A later volume of a 4-D int16 file behind an extension: moved to
    // the front of the buffer.
    let raw = nii([40, 30, 20], 3, 48, |i| (i % 911) as i16 - 400);
    let gz4 = gz(&raw, 2);
    for t in 0..3 {
        let opts = ReadOptions { volume: Some(t) };
        let (info, plan, end) = plan_of(&gz4, Some(t));
        assert!(inflate_in_place::<i16>(&gz4, end, &info, &plan).is_some());
        let expected = outcome::<i16>(&raw, &opts);
        assert!(expected.is_ok());
        assert_whole_matches_streaming(&gz4, &opts, &expected);
    }
    // A damaged stream is not read in place (streaming reports it).
    let mut bad = gz4.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let (info, plan, end) = plan_of(&gz4, Some(0));
    assert!(inflate_in_place::<i16>(&bad, end, &info, &plan).is_none());
}

#[test]
fn whole_file_inflate_matches_streaming() {
    let one = ReadOptions::default();
    let raw = nii([300, 70, 30], 1, 0, |i| (i % 5000) as i16 - 1000);
    let expected = outcome::<f32>(&raw, &one);
    assert!(expected.is_ok());
    // One member (as nibabel writes), several, and an empty last one.
    for members in [1, 3, 17] {
        assert_whole_matches_streaming(&gz(&raw, members), &one, &expected);
    }
    let mut with_empty = gz(&raw, 2);
    with_empty.extend(gz(&[], 1));
    assert_whole_matches_streaming(&with_empty, &one, &expected);
    // A file written by our writer: 8 MiB members.
    let dims = [256, 256, 80];
    let n = dims.iter().product::<usize>();
    let data = (0..n).map(|i| (i % 3001) as i16 - 1500).collect();
    let vol = Volume::new(dims, Affine::identity(), data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.nii.gz");
    write(&path, &vol, &WriteOptions::default()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 20 && gz_members(&bytes) > 1);
    let expected = Ok(vol.clone());
    assert_whole_matches_streaming(&bytes, &one, &expected);
    let expected = outcome::<f32>(&bytes, &one);
    assert!(expected.is_ok());
    assert_whole_matches_streaming(&bytes, &one, &expected);
    // An extension and a later volume of a 4-D file.
    let raw = nii([90, 80, 70], 3, 48, |i| (i % 7) as i16);
    for t in 0..3 {
        let opts = ReadOptions { volume: Some(t) };
        let expected = outcome::<u8>(&raw, &opts);
        assert!(expected.is_ok());
        assert_whole_matches_streaming(&gz(&raw, 4), &opts, &expected);
    }
    // An inexact value near the end: the same error either way.
    let mut late = nii([200, 100, 60], 1, 0, |i| (i % 100) as i16);
    let at = late.len() - 6;
    late[at..at + 2].copy_from_slice(&300i16.to_le_bytes());
    let expected = outcome::<u8>(&late, &one);
    assert!(expected.as_ref().is_err_and(|e| e.contains("300")));
    assert_whole_matches_streaming(&gz(&late, 1), &one, &expected);
}

/// Number of gzip members in a stream.
fn gz_members(mut bytes: &[u8]) -> usize {
    let mut members = 0;
    while !bytes.is_empty() {
        let mut member = flate2::bufread::GzDecoder::new(bytes);
        std::io::copy(&mut member, &mut std::io::sink()).unwrap();
        bytes = member.into_inner();
        members += 1;
    }
    members
}

#[test]
fn whole_file_inflate_falls_back_with_the_same_errors() {
    let one = ReadOptions::default();
    let raw = nii([200, 100, 60], 1, 0, |i| (i % 100) as i16);
    for members in [1, 3] {
        let good = gz(&raw, members);
        // Truncated anywhere, in the data or the trailer.
        for keep in [good.len() / 2, good.len() - 9, good.len() - 3] {
            let cut = &good[..keep];
            assert_falls_back(cut, &one);
            let e = gz_outcome::<f32>(cut, &one, GzMode::Auto).unwrap_err();
            assert!(e.contains("gzip stream is corrupt or truncated"), "{e}");
        }
        // Trailing garbage, a flipped byte in the data, a bad CRC-32.
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"garbage after the last member");
        let mut flipped = good.clone();
        let mid = flipped.len() * 3 / 4;
        flipped[mid] ^= 0x55;
        let mut bad_crc = good.clone();
        let at = bad_crc.len() - 7;
        bad_crc[at] ^= 1;
        for bytes in [trailing, flipped, bad_crc] {
            assert_falls_back(&bytes, &one);
            let e = gz_outcome::<f32>(&bytes, &one, GzMode::Auto).unwrap_err();
            assert!(e.contains("gzip stream is corrupt or truncated"), "{e}");
        }
    }
    // Less voxel data than the header announces (a valid gzip of a
    // truncated file), and more (extra bytes after the data, which the
    // streaming reader accepts).
    let short = gz(&raw[..raw.len() - 10], 2);
    assert_falls_back(&short, &one);
    let e = gz_outcome::<f32>(&short, &one, GzMode::Auto).unwrap_err();
    assert!(e.contains("voxel data has"), "{e}");
    let long = gz(&[&raw[..], b"tail"].concat(), 2);
    assert_falls_back(&long, &one);
    assert_eq!(
        gz_outcome::<f32>(&long, &one, GzMode::Auto),
        outcome::<f32>(&raw, &one)
    );
    // A member with a header CRC, which libdeflate would not check:
    // left to flate2, which reads a correct one and rejects a wrong one.
    let single = gz(&raw, 1);
    let good_hcrc = with_header_crc(&single, true);
    assert_falls_back(&good_hcrc, &one);
    assert_eq!(
        gz_outcome::<f32>(&good_hcrc, &one, GzMode::Auto),
        outcome::<f32>(&raw, &one)
    );
    let bad_hcrc = with_header_crc(&single, false);
    assert_falls_back(&bad_hcrc, &one);
    let e = gz_outcome::<f32>(&bad_hcrc, &one, GzMode::Auto).unwrap_err();
    assert!(e.contains("gzip stream is corrupt or truncated"), "{e}");
}

#[test]
fn one_volume_of_a_large_4d_file_is_streamed() {
    let plan = |len: usize, total: u64| Plan {
        data_start: 352,
        total,
        start: 352,
        len,
    };
    let mib = 1u64 << 20;
    // Small files: always whole.
    assert!(worth_inflating_whole(
        &plan(1000, 40 * 1000),
        352 + 40 * 1000
    ));
    assert!(worth_inflating_whole(&plan(1, 60 * mib), 352 + 60 * mib));
    // A large 3-D file, and one volume of two.
    let vol = 100 * mib as usize;
    assert!(worth_inflating_whole(
        &plan(vol, 100 * mib),
        352 + 100 * mib
    ));
    assert!(worth_inflating_whole(
        &plan(vol, 200 * mib),
        352 + 200 * mib
    ));
    // One volume of three large ones: streamed.
    assert!(!worth_inflating_whole(
        &plan(vol, 300 * mib),
        352 + 300 * mib
    ));
}

#[test]
fn gzip_streaming_matches_plain_reading() {
    let one = ReadOptions::default();
    // Several conversion blocks, one or many gzip members.
    let raw = nii([300, 70, 30], 1, 0, |i| (i % 5000) as i16 - 1000);
    for members in [1, 3, 17] {
        assert_same(&raw, members, &one);
    }
    // uint8-compatible values, so reading as u8 succeeds too.
    assert_same(&nii([64, 64, 40], 1, 0, |i| (i % 200) as i16), 4, &one);
    // An extension before the data, and a later volume of a 4-D file.
    let raw = nii([90, 80, 70], 3, 48, |i| (i % 7) as i16);
    for t in 0..3 {
        assert_same(&raw, 5, &ReadOptions { volume: Some(t) });
    }
    assert_same(&raw, 2, &one); // 4-D without a volume index
    assert_same(&raw, 2, &ReadOptions { volume: Some(3) });
    // A tiny volume inside the header's first 544 bytes.
    assert_same(&nii([2, 3, 4], 1, 0, |i| i as i16), 1, &one);
}

#[test]
fn gzip_streaming_reports_errors_like_plain_reading() {
    let one = ReadOptions::default();
    let raw = nii([200, 100, 60], 1, 0, |i| (i % 100) as i16);
    // Data cut short: the length error, whether the cut is in the first
    // block, a later one or the header.
    for keep in [
        400,
        352 + GZ_BLOCK + 5,
        352 + 2 * GZ_BLOCK - 3,
        raw.len() - 1,
        100,
    ] {
        assert_same(&raw[..keep], 2, &one);
    }
    // A value that does not fit u8 near the end.
    let mut late = raw.clone();
    let at = late.len() - 6;
    late[at..at + 2].copy_from_slice(&300i16.to_le_bytes());
    assert_same(&late, 3, &one);
    // Not a NIfTI file at all.
    assert_same(&[0u8; 1000], 1, &one);
    assert_same(&[], 1, &one);
}

#[test]
fn damaged_gzip_fails_as_such() {
    let raw = nii([200, 100, 60], 1, 0, |i| (i % 100) as i16);
    let good = gz(&raw, 3);
    let mut cases = vec![
        good[..good.len() / 2].to_vec(),
        good[..good.len() - 3].to_vec(),
    ];
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage after the last member");
    cases.push(trailing);
    let mut flipped = good.clone();
    let mid = flipped.len() * 3 / 4;
    flipped[mid] ^= 0x55;
    cases.push(flipped);
    for bytes in cases {
        let e = outcome::<f32>(&bytes, &ReadOptions::default()).unwrap_err();
        assert!(e.contains("gzip stream is corrupt or truncated"), "{e}");
    }
}

#[test]
fn huge_dims_in_a_tiny_gzip_do_not_allocate() {
    let mut raw = nii([2, 2, 2], 1, 0, |_| 1);
    // dim[1..4] = 32767: 70 TB of int16 announced by a ~100-byte file.
    for i in 1..4 {
        raw[40 + 2 * i..42 + 2 * i].copy_from_slice(&32767i16.to_le_bytes());
    }
    let e = outcome::<f32>(&gz(&raw, 1), &ReadOptions::default()).unwrap_err();
    assert!(e.contains("voxel data has 16 bytes"), "{e}");
}
