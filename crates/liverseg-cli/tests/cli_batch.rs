//! Issue 18: batch prediction from a manifest. Every case leaves a record;
//! a rerun skips what is done and retries only what it must; a corrupt or
//! missing case fails alone; SIGTERM stops a batch with nothing partial
//! and the rerun resumes; `liverseg report` merges the records.

mod common;
use common::{batch_records, clean_cmd, ok, phantom_ct, record_count, s};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    clean_cmd(args).output().unwrap()
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_manifest_batch_records_resumes_retries_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cases = d.join("cases");
    std::fs::create_dir(&cases).unwrap();
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        phantom_ct(
            &cases.join(format!("{id}.nii.gz")),
            i as u64,
            [40, 40, 24],
            8.0,
        );
    }
    std::fs::write(cases.join("bad.nii.gz"), b"not a nifti").unwrap();
    // Relative inputs are taken from the manifest's folder; `gone` does not
    // exist yet; `c` names its own output.
    let manifest = d.join("batch.csv");
    std::fs::write(
        &manifest,
        "id,input,output\n\
         c,cases/c.nii.gz,c_liver.nii.gz\n\
         a,cases/a.nii.gz,\n\
         bad,cases/bad.nii.gz,\n\
         gone,cases/gone.nii.gz,\n\
         b,cases/b.nii.gz,\n",
    )
    .unwrap();
    let out = d.join("out");
    let args = ["predict", "--input", s(&manifest), "--output", s(&out)];
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("case bad failed"), "{}", stderr(&o));
    assert!(stderr(&o).contains("case gone failed"), "{}", stderr(&o));
    let masks: Vec<PathBuf> = ["a.nii.gz", "b.nii.gz", "c_liver.nii.gz"]
        .iter()
        .map(|m| out.join(m))
        .collect();
    for m in &masks {
        assert!(m.is_file(), "{}", m.display());
    }
    let r = batch_records(&out);
    for id in ["a", "b", "c"] {
        assert_eq!(record_count(&r, id, "ok"), 1, "{id}");
        assert_eq!(record_count(&r, id, "started"), 1, "{id}");
    }
    let a = r
        .iter()
        .find(|r| r["id"] == "a" && r["status"] == "ok")
        .unwrap();
    let input_size = std::fs::metadata(cases.join("a.nii.gz")).unwrap().len();
    assert_eq!(a["inputs"][0]["size"], input_size);
    assert_eq!(a["model_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        a["outputs"][0]["size"],
        std::fs::metadata(&masks[0]).unwrap().len()
    );
    assert!(a["volumes_ml"]["liver"].as_f64().unwrap() > 100.0);
    assert_eq!(a["shard"], "0/1");
    let bad = r.iter().find(|r| r["id"] == "bad").unwrap();
    assert_eq!(bad["status"], "failed");
    assert!(!bad["error"].as_str().unwrap().is_empty());

    // The report: every case, two failed, exit 2.
    let rep = run(&["report", s(&out), "--json"]);
    assert_eq!(rep.status.code(), Some(2), "{}", stderr(&rep));
    let j: serde_json::Value = serde_json::from_slice(&rep.stdout).unwrap();
    assert_eq!(j["summary"]["cases"], 5);
    assert_eq!(j["summary"]["ok"], 3);
    assert_eq!(
        j["summary"]["failed_ids"],
        serde_json::json!(["bad", "gone"])
    );
    assert_eq!(j["summary"]["missing"], 0);
    let csv = std::fs::read_to_string(out.join(".liverseg/report.csv")).unwrap();
    assert!(
        csv.starts_with("id,status,shard,seconds,liver_ml,outputs,error\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 6);

    // A rerun does nothing new: the done cases are skipped (outputs not
    // rewritten), the failures are not retried.
    let before: Vec<_> = masks.iter().map(|m| mtime(m)).collect();
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2));
    let again = batch_records(&out);
    assert_eq!(again.len(), r.len(), "no new records");
    assert_eq!(before, masks.iter().map(|m| mtime(m)).collect::<Vec<_>>());
    // --retry-failed retries the two failures only.
    let mut retry = args.to_vec();
    retry.push("--retry-failed");
    assert_eq!(run(&retry).status.code(), Some(2));
    let again = batch_records(&out);
    assert_eq!(record_count(&again, "bad", "failed"), 2);
    assert_eq!(record_count(&again, "a", "ok"), 1);

    // Fixed inputs are retried without asking (their fingerprint changed);
    // a deleted output is redone. Then everything is done: exit 0.
    std::fs::remove_file(cases.join("bad.nii.gz")).unwrap();
    phantom_ct(&cases.join("bad.nii.gz"), 7, [40, 40, 24], 8.0);
    phantom_ct(&cases.join("gone.nii.gz"), 8, [40, 40, 24], 8.0);
    std::fs::remove_file(&masks[1]).unwrap();
    ok(&run(&args));
    let done = batch_records(&out);
    assert_eq!(record_count(&done, "bad", "ok"), 1);
    assert_eq!(record_count(&done, "b", "ok"), 2);
    assert_eq!(record_count(&done, "a", "ok"), 1);
    assert!(masks[1].is_file());
    let rep = run(&["report", s(&out)]);
    ok(&rep);
    assert!(
        String::from_utf8_lossy(&rep.stdout).starts_with("5 cases: 5 ok, 0 failed, 0 missing"),
        "{}",
        String::from_utf8_lossy(&rep.stdout)
    );

    // --force redoes every case, replacing the batch's own outputs but
    // never a file it did not write.
    std::fs::write(
        &manifest,
        "id,input\na,cases/a.nii.gz\nnew,cases/b.nii.gz\n",
    )
    .unwrap();
    std::fs::write(out.join("new.nii.gz"), b"someone else's").unwrap();
    let mut force = args.to_vec();
    force.push("--force");
    let o = run(&force);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("case new failed"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(out.join("new.nii.gz")).unwrap(),
        b"someone else's"
    );
    assert_eq!(record_count(&batch_records(&out), "a", "ok"), 2);

    // An ensemble of one model twice gives that model's mask.
    let ens = d.join("ens.nii.gz");
    ok(&run(&[
        "predict",
        "--model",
        "builtin",
        "--model",
        "builtin",
        "--input",
        s(&cases.join("a.nii.gz")),
        "--output",
        s(&ens),
    ]));
    assert_eq!(
        std::fs::read(&ens).unwrap(),
        std::fs::read(&masks[0]).unwrap()
    );
}

#[test]
fn sigterm_stops_a_batch_with_nothing_partial_and_the_rerun_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cases = d.join("cases");
    std::fs::create_dir(&cases).unwrap();
    let n = 8;
    for i in 0..n {
        phantom_ct(
            &cases.join(format!("case_{i}.nii.gz")),
            i,
            [96, 96, 60],
            4.0,
        );
    }
    let out = d.join("out");
    let args = ["predict", "--input", s(&cases), "--output", s(&out)];
    let child = clean_cmd(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first case to be done, then stop the batch as Slurm
    // does at a time limit.
    let journal = out.join(".liverseg/shard-0-of-1.jsonl");
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"status\":\"ok\"")) {
        assert!(t.elapsed().as_secs() < 300, "no case finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopped = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    let waited = stopped.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("interrupted by a termination signal"),
        "{}",
        stderr(&o)
    );
    let r = batch_records(&out);
    let done: Vec<String> = (0..n)
        .map(|i| format!("case_{i}"))
        .filter(|id| record_count(&r, id, "ok") == 1)
        .collect();
    assert!(done.len() < n as usize, "the batch ended before the signal");
    eprintln!(
        "stopped {waited:.1} s after SIGTERM with {} of {n} done",
        done.len()
    );
    // Nothing partial: only done cases have a mask, no staging is left.
    for e in std::fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name == ".liverseg" {
            continue;
        }
        assert!(!name.starts_with('.'), "left behind: {name}");
        let id = name.trim_end_matches(".nii.gz");
        assert!(done.iter().any(|d| d == id), "{name} without an ok record");
    }
    // The rerun does the rest and nothing twice.
    ok(&run(&args));
    let r = batch_records(&out);
    for i in 0..n {
        assert_eq!(record_count(&r, &format!("case_{i}"), "ok"), 1, "case_{i}");
    }
}
