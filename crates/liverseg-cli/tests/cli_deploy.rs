//! Issue 18: the deployment templates on the engines they are for. The
//! Slurm array template runs on a real one-node cluster (CI starts it with
//! `deploy/slurm/local-cluster.sh`): a dozen small CTs, one corrupt, every
//! output checked and the merged report; a shard requeued mid-run resumes
//! without redoing a case. The Kubernetes Indexed Job is parsed and its
//! command run with the environment each pod gets.

mod common;
use common::{batch_records, clean_cmd, phantom_ct, record_count, s, tool_available};

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A Slurm cluster that answers (`sinfo` lists a node able to take jobs).
fn slurm_available() -> bool {
    tool_available(
        "a Slurm cluster (sbatch, sinfo; start one with deploy/slurm/local-cluster.sh)",
        Command::new("sh").args([
            "-c",
            "command -v sbatch >/dev/null && sinfo -h -N -o %T | grep -qE '^(idle|mix|alloc|comp|plan|resv)'",
        ]),
    )
}

/// `n` phantom CTs `case_00`… in `dir`; `corrupt` names one that is not a
/// NIfTI.
fn cases(dir: &Path, n: u64, dims: [usize; 3], spacing: f64, corrupt: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        phantom_ct(&dir.join(format!("case_{i:02}.nii.gz")), i, dims, spacing);
    }
    if let Some(name) = corrupt {
        std::fs::write(dir.join(name), b"truncated upload").unwrap();
    }
}

/// `sbatch` of the predict template over `input` into `out`, as the
/// template's README shows, with small resources; extra sbatch flags
/// first. Returns sbatch's output.
fn sbatch(input: &Path, out: &Path, logs: &Path, extra: &[&str]) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_liverseg");
    let mut c = Command::new("sbatch");
    c.args(extra)
        .args([
            "--cpus-per-task=1",
            "--mem=1G",
            "--time=20",
            &format!("--output={}/slurm-%A_%a.log", logs.display()),
            &format!(
                "--export=ALL,LIVERSEG={bin},LIVERSEG_INPUT={},LIVERSEG_OUTPUT={}",
                input.display(),
                out.display()
            ),
        ])
        .arg(repo("deploy/slurm/predict-array.sbatch"));
    for v in common::SCHEDULER_VARS {
        c.env_remove(v);
    }
    c.output().unwrap()
}

fn report(out: &Path) -> (Option<i32>, Value) {
    let o = clean_cmd(&["report", s(out), "--json"]).output().unwrap();
    (o.status.code(), serde_json::from_slice(&o.stdout).unwrap())
}

fn logs_of(dir: &Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".log") {
            all += &format!(
                "== {}\n{}",
                p.display(),
                std::fs::read_to_string(&p).unwrap()
            );
        }
    }
    all
}

#[test]
fn the_slurm_array_template_segments_a_dozen_cases_and_isolates_the_corrupt_one() {
    if !slurm_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let input = d.join("cases");
    cases(&input, 11, [40, 40, 24], 8.0, Some("case_99.nii.gz"));
    let out = d.join("masks");
    // Three shards; --wait returns when every task has ended.
    let o = sbatch(&input, &out, d, &["--wait", "--array=0-2"]);
    let logs = logs_of(d);
    // The shard holding the corrupt case exits 2, so the array fails.
    assert!(!o.status.success(), "sbatch --wait succeeded:\n{logs}");
    let r = batch_records(&out);
    for i in 0..11 {
        let id = format!("case_{i:02}");
        assert_eq!(record_count(&r, &id, "ok"), 1, "{id}:\n{logs}");
        assert!(out.join(format!("{id}.nii.gz")).is_file(), "{id}");
    }
    assert_eq!(record_count(&r, "case_99", "failed"), 1, "{logs}");
    // Each case ran in the shard its sorted index gives.
    for rec in r.iter().filter(|r| r["status"] == "ok") {
        let id = rec["id"].as_str().unwrap();
        let k: usize = id[5..].parse().unwrap();
        assert_eq!(rec["shard"], format!("{}/3", k % 3), "{id}");
    }
    let (code, j) = report(&out);
    assert_eq!(code, Some(2));
    assert_eq!(j["summary"]["cases"], 12);
    assert_eq!(j["summary"]["ok"], 11);
    assert_eq!(j["summary"]["failed_ids"], serde_json::json!(["case_99"]));
    assert_eq!(j["summary"]["missing"], 0);
    assert_eq!(
        j["summary"]["shards"],
        serde_json::json!(["0/3", "1/3", "2/3"])
    );
}

#[test]
fn a_slurm_shard_requeued_mid_run_resumes_without_redoing_cases() {
    if !slurm_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let input = d.join("cases");
    let n = 8;
    cases(&input, n, [96, 96, 60], 4.0, None);
    let out = d.join("masks");
    let o = sbatch(&input, &out, d, &["--parsable", "--array=0-1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let job = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let task = format!("{job}_0");
    // When shard 0 has finished one case, requeue it as a preemption
    // would: SIGTERM, then the task goes back to the queue. Slurm holds a
    // requeued job for two minutes; StartTime=now releases it.
    let journal = out.join(".liverseg/shard-0-of-2.jsonl");
    let t = Instant::now();
    while !std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"status\":\"ok\"")) {
        assert!(t.elapsed() < Duration::from_secs(300), "{}", logs_of(d));
        std::thread::sleep(Duration::from_millis(50));
    }
    let done_before = record_count_ok(&out);
    let ok = |args: &[&str]| {
        let o = Command::new("scontrol").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "scontrol {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(&["requeue", &task]);
    std::thread::sleep(Duration::from_secs(1));
    ok(&["update", &format!("jobid={task}"), "StartTime=now"]);
    // Wait for the array to leave the queue.
    let t = Instant::now();
    loop {
        let q = Command::new("squeue")
            .args(["-h", "-j", &job])
            .output()
            .unwrap();
        if q.status.success() && q.stdout.iter().all(u8::is_ascii_whitespace) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(600), "{}", logs_of(d));
        std::thread::sleep(Duration::from_secs(1));
    }
    let logs = logs_of(d);
    assert!(
        logs.contains("restart 1"),
        "shard 0 never restarted:\n{logs}"
    );
    assert!(
        logs.contains("interrupted by a termination signal"),
        "shard 0 was not stopped mid-run:\n{logs}"
    );
    let r = batch_records(&out);
    for i in 0..n {
        let id = format!("case_{i:02}");
        assert_eq!(
            record_count(&r, &id, "ok"),
            1,
            "{id} done twice or never:\n{logs}"
        );
    }
    assert!(done_before >= 1);
    let (code, j) = report(&out);
    assert_eq!(code, Some(0), "{j}");
    assert_eq!(j["summary"]["ok"], n);
}

fn record_count_ok(out: &Path) -> usize {
    batch_records(out)
        .iter()
        .filter(|r| r["status"] == "ok")
        .count()
}

/// The Indexed Job parsed as Kubernetes would read it (PyYAML).
fn k8s_job() -> Option<Value> {
    if !common::tool_available(
        "python3 with yaml (PyYAML)",
        Command::new("python3").args(["-c", "import yaml"]),
    ) {
        return None;
    }
    let o = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repo("deploy/k8s/predict-job.yaml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Some(serde_json::from_slice(&o.stdout).unwrap())
}

#[test]
fn the_kubernetes_indexed_job_runs_its_command_in_each_pods_environment() {
    let Some(job) = k8s_job() else { return };
    let spec = &job["spec"];
    assert_eq!(job["kind"], "Job");
    assert_eq!(spec["completionMode"], "Indexed");
    let completions = spec["completions"].as_u64().unwrap();
    let container = &spec["template"]["spec"]["containers"][0];
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let count = env
        .iter()
        .find(|(k, _)| k == "LIVERSEG_SHARD_COUNT")
        .map(|(_, v)| v.clone())
        .expect("LIVERSEG_SHARD_COUNT in the pod's environment");
    assert_eq!(
        count,
        completions.to_string(),
        "the count must equal completions"
    );
    // Exit 2 (bad cases) fails only its index; the rule names the container.
    let rules = spec["podFailurePolicy"]["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["action"] == "FailIndex"
        && r["onExitCodes"]["containerName"] == container["name"]
        && r["onExitCodes"]["values"] == serde_json::json!([2])));
    let command: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(command[..2], ["liverseg", "predict"]);

    // Each pod: the same command, the volume's paths here, and the
    // environment Kubernetes gives pod K.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    cases(&data.join("cases"), 6, [40, 40, 24], 8.0, None);
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| a.replace("/data/", &format!("{}/", data.display())))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for k in 0..completions {
        let mut c = clean_cmd(&args);
        c.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("JOB_COMPLETION_INDEX", k.to_string());
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "pod {k}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let out = data.join("masks");
    let r = batch_records(&out);
    for i in 0..6 {
        let id = format!("case_{i:02}");
        assert_eq!(record_count(&r, &id, "ok"), 1, "{id}");
    }
    let (code, j) = report(&out);
    assert_eq!(code, Some(0), "{j}");
    assert_eq!(
        j["summary"]["shards"].as_array().unwrap().len(),
        completions as usize
    );
}

/// `sbatch --wait` of a training template on a CPU-only job (no GPU,
/// one CPU per task, small memory), with the tiny dataset and training
/// configuration under `d`, the test binary as `LIVERSEG`, `--device cpu`
/// and `export` (`NAME=value,...`) added; fails with the job's logs.
fn train_job(d: &Path, template: &str, extra: &[&str], export: &str) -> String {
    let data = d.join("Phantom");
    common::tiny_dataset(&data, 5);
    let config = common::tiny_train_config(d, None);
    let bin = env!("CARGO_BIN_EXE_liverseg");
    let o = Command::new("sbatch")
        .args(["--wait", "--gres=none", "--cpus-per-task=1", "--mem=1G", "--time=20"])
        .args(extra)
        .arg(format!("--output={}/job-%j-%a.log", d.display()))
        .arg(format!(
            "--export=ALL,LIVERSEG={bin},LIVERSEG_DATA={},LIVERSEG_DEVICE=cpu,{export},LIVERSEG_ARGS=--config {}",
            data.display(),
            config.display()
        ))
        .arg(repo(template))
        .output()
        .unwrap();
    let logs = logs_of(d);
    assert!(
        o.status.success(),
        "{}\n{logs}",
        String::from_utf8_lossy(&o.stderr)
    );
    logs
}

#[test]
fn the_slurm_fold_template_trains_each_fold_and_the_folds_predict_as_an_ensemble() {
    if !slurm_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = d.join("Phantom");
    let runs = d.join("runs");
    // The template asks for a GPU per fold; this cluster has none.
    let logs = train_job(
        d,
        "deploy/slurm/train-folds.sbatch",
        &["--array=0-1"],
        &format!("LIVERSEG_RUNS={}", runs.display()),
    );
    let models: Vec<PathBuf> = (0..2)
        .map(|k| runs.join(format!("fold_{k}/best/model.safetensors")))
        .collect();
    for m in &models {
        assert!(m.is_file(), "{}:\n{logs}", m.display());
    }
    // The two folds hold different validation cases, so different weights;
    // together they predict as one ensemble.
    assert_ne!(
        std::fs::read(&models[0]).unwrap(),
        std::fs::read(&models[1]).unwrap()
    );
    let mask = d.join("mask.nii.gz");
    let o = clean_cmd(&[
        "predict",
        "--model",
        s(&models[0]),
        "--model",
        s(&models[1]),
        "--input",
        s(&data.join("imagesTr/p0.nii.gz")),
        "--output",
        s(&mask),
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(mask.is_file());
}

#[test]
fn the_slurm_ddp_template_trains_one_fold_on_two_ranks() {
    if !slurm_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("run");
    // A free port for rank 0 (the template's default derives one from the
    // job id; tests running at once must not share it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Two CPU ranks instead of four GPUs; this cluster's node answers on
    // 127.0.0.1, whatever its name resolves to.
    let logs = train_job(
        d,
        "deploy/slurm/train-ddp.sbatch",
        &["--ntasks-per-node=2"],
        &format!(
            "LIVERSEG_OUT={},MASTER_ADDR=127.0.0.1,MASTER_PORT={port}",
            out.display()
        ),
    );
    assert!(logs.contains("2 ranks, rank 0 at 127.0.0.1"), "{logs}");
    assert!(out.join("best/model.safetensors").is_file(), "{logs}");
    // Rank 1 (SLURM_PROCID 1) logged beside rank 0 and wrote nothing else;
    // both ended with the same weights.
    let fingerprint = |log: &str| {
        let text = std::fs::read_to_string(out.join(log)).unwrap();
        text.lines()
            .filter(|l| l.contains("final weights"))
            .filter_map(|l| l.split("fingerprint=").nth(1))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let f0 = fingerprint("train.log");
    assert_eq!(f0.len(), 1, "{logs}");
    assert_eq!(f0, fingerprint("train.rank-1.log"));
}
