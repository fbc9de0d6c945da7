//! Tests of atomic files and folders.

use super::*;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn write_one(d: &Path, name: &str) -> Result<()> {
    fs::write(d.join(name), name).map_err(|e| Error::io(d, "w", e))
}

#[test]
fn failed_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a.bin");
    let err = write_file_atomic(&target, Overwrite::Never, |w| {
        w.write_all(b"partial")?;
        Err(std::io::Error::other("boom"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("a.bin"), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn refuses_to_overwrite_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a.bin");
    write_file_atomic(&target, Overwrite::Never, |w| w.write_all(b"one")).unwrap();
    let e = write_file_atomic(&target, Overwrite::Never, |w| w.write_all(b"two"));
    assert!(matches!(e, Err(Error::Exists { .. })));
    assert_eq!(fs::read(&target).unwrap(), b"one");
    write_file_atomic(&target, Overwrite::Allow, |w| w.write_all(b"two")).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"two");
}

#[test]
fn directory_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("series");
    write_dir_atomic(&target, Overwrite::Never, |d| write_one(d, "1.dcm")).unwrap();
    assert!(is_liverseg_output(&target));
    write_dir_atomic(&target, Overwrite::Allow, |d| write_one(d, "2.dcm")).unwrap();
    assert_eq!(names(&target), vec![MARKER.to_string(), "2.dcm".into()]);
    assert_eq!(names(dir.path()), vec!["series".to_string()]);
}

/// `--force` replaces what liverseg wrote, never somebody else's folder,
/// and never a file with a folder or a folder with a file.
#[test]
fn foreign_folders_and_other_kinds_are_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("mine");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("thesis.tex"), b"years of work").unwrap();
    let e = write_dir_atomic(&foreign, Overwrite::Allow, |d| write_one(d, "x")).unwrap_err();
    assert!(e.to_string().contains("did not write"), "{e}");
    assert!(e.is_bad_input());
    assert_eq!(
        fs::read(foreign.join("thesis.tex")).unwrap(),
        b"years of work"
    );

    let file = dir.path().join("notes.txt");
    fs::write(&file, b"keep").unwrap();
    let e = write_dir_atomic(&file, Overwrite::Allow, |d| write_one(d, "x")).unwrap_err();
    assert!(e.to_string().contains("is a file"), "{e}");
    let e = write_file_atomic(&foreign, Overwrite::Allow, |w| w.write_all(b"x")).unwrap_err();
    assert!(e.to_string().contains("is a folder"), "{e}");
    assert_eq!(fs::read(&file).unwrap(), b"keep");
    assert_eq!(
        names(dir.path()),
        vec!["mine".to_string(), "notes.txt".into()]
    );
}

#[test]
fn a_failed_fill_keeps_the_old_folder() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    write_dir_atomic(&target, Overwrite::Never, |d| write_one(d, "old")).unwrap();
    let e = write_dir_atomic(&target, Overwrite::Allow, |d| {
        write_one(d, "new")?;
        Err(Error::invalid(d, "boom"))
    });
    assert!(e.is_err());
    assert_eq!(names(&target), vec![MARKER.to_string(), "old".into()]);
    assert_eq!(names(dir.path()), vec!["out".to_string()]);
}

/// Replacement without an atomic exchange: a run killed between its two
/// renames leaves the target missing; the next write finishes the swap.
#[cfg(target_os = "linux")]
#[test]
fn leftovers_of_killed_runs_are_recovered_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dead = 4_194_305u32;
    fs::create_dir(d.join(format!(".last.new-{dead}-1"))).unwrap();
    write_one(&d.join(format!(".last.new-{dead}-1")), "epoch2").unwrap();
    fs::create_dir(d.join(format!(".last.old-{dead}-0"))).unwrap();
    fs::write(d.join(format!(".curves.png.tmp-{dead}-2")), b"half").unwrap();
    write_file_atomic(&d.join("metrics.csv"), Overwrite::Never, |w| {
        w.write_all(b"x")
    })
    .unwrap();
    assert_eq!(names(d), vec!["last".to_string(), "metrics.csv".into()]);
    assert_eq!(names(&d.join("last")), vec!["epoch2".to_string()]);
}
