//! Tests of `fetch-data` against a local HTTP server and local archives.

use super::*;
use crate::extract::tests::{finish, raw_entry};
use crate::test_server::{Behaviour, TestServer};
use std::io::Write;
use std::time::Duration;

/// A tiny gzipped NIfTI file.
fn tiny_nifti(value: i16) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.nii.gz");
    let v = liverseg_io::Volume::new([4, 3, 2], liverseg_io::Affine::identity(), vec![value; 24])
        .unwrap();
    liverseg_io::nifti::write(&p, &v, &Default::default()).unwrap();
    std::fs::read(p).unwrap()
}

/// The raw bytes of a tar entry for `name` holding `data`.
fn file_entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
    let mut bytes = b.into_inner().unwrap();
    bytes.truncate(bytes.len() - 1024); // Drop the end-of-archive blocks.
    bytes
}

/// A small MSD-like `Task03_Liver` tar.gz: 2 training pairs, 1 test image,
/// an AppleDouble file, optionally without `labelsTr/` and with `extra`
/// raw entries appended.
fn msd_archive(with_labels: bool, extra: &[Vec<u8>]) -> Vec<u8> {
    let json = r#"{"name": "Liver", "description": "test", "tensorImageSize": "3D",
        "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "numTraining": 2, "numTest": 1,
        "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"},
                     {"image": "./imagesTr/liver_1.nii.gz", "label": "./labelsTr/liver_1.nii.gz"}],
        "test": ["./imagesTs/liver_2.nii.gz"]}"#;
    let mut t = file_entry("Task03_Liver/dataset.json", json.as_bytes());
    for i in 0..2 {
        t.extend(file_entry(
            &format!("Task03_Liver/imagesTr/liver_{i}.nii.gz"),
            &tiny_nifti(40),
        ));
        if with_labels {
            t.extend(file_entry(
                &format!("Task03_Liver/labelsTr/liver_{i}.nii.gz"),
                &tiny_nifti(1),
            ));
        }
    }
    t.extend(file_entry(
        "Task03_Liver/imagesTr/._liver_0.nii.gz",
        b"\x00\x05\x16\x07mac",
    ));
    t.extend(file_entry(
        "Task03_Liver/imagesTs/liver_2.nii.gz",
        &tiny_nifti(0),
    ));
    for e in extra {
        t.extend_from_slice(e);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&finish(t)).unwrap();
    gz.finish().unwrap()
}

fn md5_of(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn args(data_dir: &Path, url: Option<String>, md5: &str, archive: Vec<PathBuf>) -> FetchArgs {
    FetchArgs {
        dataset: Dataset::MsdLiver,
        task: None,
        data_dir: data_dir.to_path_buf(),
        url,
        md5: Some(md5.to_string()),
        archive,
        force: false,
        retries: 0,
    }
}

fn quick(retries: u32) -> HttpOptions {
    HttpOptions {
        retries,
        retry_delay: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        reserve_for_extraction: true,
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn downloads_extracts_verifies_and_then_does_nothing() {
    let bytes = msd_archive(true, &[]);
    let md5 = md5_of(&bytes);
    let server = TestServer::start(bytes.clone(), Behaviour::default());
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let a = args(
        &data,
        Some(server.url("/Task03_Liver.tar.gz")),
        &md5,
        vec![],
    );
    run_with(&a, &quick(0)).unwrap();
    let target = data.join("Task03_Liver");
    assert_eq!(verify_layout(&target).unwrap().training, 2);
    assert_eq!(listing(&data), vec!["Task03_Liver", "Task03_Liver.tar.gz"]);
    assert_eq!(
        listing(&target.join("imagesTr")),
        vec!["liver_0.nii.gz", "liver_1.nii.gz"]
    );
    assert_eq!(
        std::fs::read(data.join("Task03_Liver.tar.gz")).unwrap(),
        bytes
    );
    let marker: Marker =
        serde_json::from_str(&std::fs::read_to_string(target.join(MARKER)).unwrap()).unwrap();
    assert_eq!(marker.archive_md5, md5);
    assert_eq!((marker.training, marker.test), (2, 1));
    let img: liverseg_io::Volume<i16> =
        liverseg_io::nifti::read(&target.join("imagesTr/liver_1.nii.gz"), &Default::default())
            .unwrap();
    assert_eq!(img.get(3, 2, 1), Some(40));
    assert_eq!(server.requests().len(), 1);

    // A second run finds the verified copy and makes no request.
    run_with(&a, &quick(0)).unwrap();
    assert_eq!(server.requests().len(), 1);
    // --force re-extracts from the kept archive, still without a request.
    run_with(
        &FetchArgs {
            force: true,
            ..a.clone()
        },
        &quick(0),
    )
    .unwrap();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(listing(&data), vec!["Task03_Liver", "Task03_Liver.tar.gz"]);
}

#[test]
fn interrupted_download_resumes_with_range_in_the_next_run() {
    let bytes = msd_archive(true, &[]);
    let md5 = md5_of(&bytes);
    let half = bytes.len() / 2;
    let server = TestServer::start(
        bytes.clone(),
        Behaviour {
            drop_after: Some(half),
            drop_times: 1,
            ..Behaviour::default()
        },
    );
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let a = args(
        &data,
        Some(server.url("/Task03_Liver.tar.gz")),
        &md5,
        vec![],
    );
    let e = format!("{:#}", run_with(&a, &quick(0)).unwrap_err());
    assert!(e.contains("run again to resume"), "{e}");
    let part = data.join("Task03_Liver.tar.gz.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), half as u64);
    assert!(!data.join("Task03_Liver").exists());

    run_with(&a, &quick(0)).unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let expected = format!("bytes={half}-");
    assert_eq!(reqs[1].range.as_deref(), Some(expected.as_str()));
    assert!(!part.exists());
    assert_eq!(md5_file(&data.join("Task03_Liver.tar.gz")).unwrap(), md5);
    assert!(verified(&data.join("Task03_Liver"), |m| m.archive_md5 == md5).is_some());
}

#[test]
fn wrong_checksum_extracts_nothing_and_deletes_the_download() {
    let bytes = msd_archive(true, &[]);
    let server = TestServer::start(bytes, Behaviour::default());
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let a = args(
        &data,
        Some(server.url("/Task03_Liver.tar.gz")),
        &"0".repeat(32),
        vec![],
    );
    let e = format!("{:#}", run_with(&a, &quick(0)).unwrap_err());
    assert!(e.contains("MD5 mismatch") && e.contains("deleted"), "{e}");
    assert!(listing(&data).is_empty(), "{:?}", listing(&data));
}

#[test]
fn unsafe_archives_are_rejected_without_writing_outside() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    for (extra, why) in [
        (
            raw_entry("../evil", tar::EntryType::Regular, None, b"x"),
            "'..'",
        ),
        (
            raw_entry("/abs", tar::EntryType::Regular, None, b"x"),
            "absolute",
        ),
        (
            raw_entry(
                "Task03_Liver/link",
                tar::EntryType::Symlink,
                Some("../../evil"),
                b"",
            ),
            "points outside",
        ),
    ] {
        let bytes = msd_archive(true, &[extra]);
        let archive = root.path().join("Task03_Liver.tar.gz");
        std::fs::write(&archive, &bytes).unwrap();
        let a = args(&data, None, &md5_of(&bytes), vec![archive]);
        let e = format!("{:#}", run_with(&a, &quick(0)).unwrap_err());
        assert!(e.contains("rejected") && e.contains(why), "{e}");
        assert!(listing(&data).is_empty(), "{:?}", listing(&data));
        assert_eq!(listing(root.path()), vec!["Task03_Liver.tar.gz", "data"]);
    }
}

#[test]
fn missing_labels_folder_is_a_layout_error() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let bytes = msd_archive(false, &[]);
    let archive = root.path().join("t.tar.gz");
    std::fs::write(&archive, &bytes).unwrap();
    let a = args(&data, None, &md5_of(&bytes), vec![archive.clone()]);
    let e = format!("{:#}", run_with(&a, &quick(0)).unwrap_err());
    assert!(e.contains("labelsTr"), "{e}");
    assert!(listing(&data).is_empty());
    // A local archive with another MD5 is refused before extraction.
    let a = args(&data, None, &"1".repeat(32), vec![archive]);
    let e = format!("{:#}", run_with(&a, &quick(0)).unwrap_err());
    assert!(e.contains("MD5 mismatch") && e.contains("--md5"), "{e}");
}

#[test]
fn unreachable_server_explains_how_to_import() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/Task03_Liver.tar");
    let root = tempfile::tempdir().unwrap();
    let a = args(root.path(), Some(url.clone()), MSD_LIVER_MD5, vec![]);
    let e = format!("{:#}", run_with(&a, &quick(0)).unwrap_err());
    assert!(
        e.contains(&url) && e.contains("--archive") && e.contains(MSD_LIVER_MD5),
        "{e}"
    );
}

#[test]
fn an_unverified_folder_is_not_replaced_without_force() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("Task03_Liver/imagesTr")).unwrap();
    let a = args(
        root.path(),
        Some("http://127.0.0.1:9/x.tar".into()),
        MSD_LIVER_MD5,
        vec![],
    );
    let e = format!("{:#}", run_with(&a, &quick(0)).unwrap_err());
    assert!(e.contains("--force"), "{e}");
    assert!(expected_md5(Some("xyz")).is_err());
    assert_eq!(expected_md5(None).unwrap(), MSD_LIVER_MD5);
    assert_eq!(
        file_name_of("https://h/a/Task03_Liver.tar?x=1").unwrap(),
        "Task03_Liver.tar"
    );
}

/// A zip with the given members, deflated.
fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out).unwrap();
    out
}

#[test]
fn lits_zips_are_imported_as_decathlon_layout() {
    let root = tempfile::tempdir().unwrap();
    let raw_img = gunzip(&tiny_nifti(-20));
    let raw_seg = gunzip(&tiny_nifti(2));
    let z1 = root.path().join("Training_Batch1.zip");
    let z2 = root.path().join("Training_Batch2.zip");
    std::fs::write(
        &z1,
        zip_of(&[
            ("Training Batch 1/volume-0.nii", &raw_img),
            ("Training Batch 1/segmentation-0.nii", &raw_seg),
        ]),
    )
    .unwrap();
    std::fs::write(
        &z2,
        zip_of(&[
            ("volume-10.nii", &raw_img),
            ("segmentation-10.nii.gz", &tiny_nifti(1)),
            ("__MACOSX/._volume-10.nii", b"mac"),
        ]),
    )
    .unwrap();
    let data = root.path().join("data");
    let a = args(&data, None, MSD_LIVER_MD5, vec![z1.clone(), z2.clone()]);
    run_with(&a, &quick(0)).unwrap();
    let target = data.join("LiTS");
    let report = verify_layout(&target).unwrap();
    assert_eq!((report.training, report.test), (2, 0));
    let ds = crate::msd::DatasetJson::read(&target).unwrap();
    assert_eq!(ds.labels["2"], "tumour");
    assert_eq!(ds.training[1].image, "./imagesTr/liver_10.nii.gz");
    assert_eq!(
        gunzip(&std::fs::read(target.join("imagesTr/liver_0.nii.gz")).unwrap()),
        raw_img
    );
    let seg: liverseg_io::Volume<i16> =
        liverseg_io::nifti::read(&target.join("labelsTr/liver_0.nii.gz"), &Default::default())
            .unwrap();
    assert_eq!(seg.get(0, 0, 0), Some(2));
    assert_eq!(listing(&data), vec!["LiTS"]);
    // The same archives again: nothing to do.
    run_with(&a, &quick(0)).unwrap();
    // A zip missing a segmentation is an error naming the case.
    std::fs::write(&z2, zip_of(&[("volume-11.nii", &raw_img)])).unwrap();
    let b = FetchArgs { force: true, ..a };
    let e = format!("{:#}", run_with(&b, &quick(0)).unwrap_err());
    assert!(e.contains("segmentation-11"), "{e}");
    assert!(verify_layout(&target).is_ok(), "old import kept on failure");
}

/// Issue 17: any of the ten Decathlon tasks, named by `--task`, is fetched,
/// MD5-checked and extracted into its own folder, exactly as Task03 is.
#[test]
fn any_decathlon_task_is_fetched_into_its_own_folder() {
    let json = r#"{"name": "Spleen", "description": "test", "tensorImageSize": "3D",
        "modality": {"0": "CT"}, "labels": {"0": "background", "1": "spleen"},
        "numTraining": 1, "numTest": 1,
        "training": [{"image": "./imagesTr/spleen_2.nii.gz", "label": "./labelsTr/spleen_2.nii.gz"}],
        "test": ["./imagesTs/spleen_1.nii.gz"]}"#;
    let mut t = file_entry("Task09_Spleen/dataset.json", json.as_bytes());
    for (rel, v) in [
        ("imagesTr/spleen_2.nii.gz", 40),
        ("labelsTr/spleen_2.nii.gz", 1),
        ("imagesTs/spleen_1.nii.gz", 40),
    ] {
        t.extend(file_entry(&format!("Task09_Spleen/{rel}"), &tiny_nifti(v)));
    }
    let bytes = finish(t);
    let md5 = md5_of(&bytes);
    let server = TestServer::start(bytes, Behaviour::default());
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut a = args(&data, Some(server.url("/Task09_Spleen.tar")), &md5, vec![]);
    a.task = Some("spleen".into());
    run_with(&a, &quick(0)).unwrap();
    assert_eq!(listing(&data), vec!["Task09_Spleen", "Task09_Spleen.tar"]);
    assert_eq!(
        verify_layout(&data.join("Task09_Spleen")).unwrap().training,
        1
    );
    // A second run finds the verified copy and leaves it.
    run_with(&a, &quick(0)).unwrap();
    // Without --md5 the task's own (MONAI's) sum is expected: this archive
    // is not the real one, so it is refused and nothing is extracted.
    let other = root.path().join("other");
    let mut b = args(&other, Some(server.url("/Task09_Spleen.tar")), &md5, vec![]);
    b.md5 = None;
    b.task = Some("9".into());
    let e = format!("{:#}", run_with(&b, &quick(0)).unwrap_err());
    assert!(e.contains("410d4a301da4e5b2f6f86ec3ddba524e"), "{e}");
    assert!(!other.join("Task09_Spleen").exists());
}
