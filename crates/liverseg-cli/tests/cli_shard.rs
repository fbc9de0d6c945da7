//! Issue 18: `predict --shard I/N` on a folder of cases, and the shard an
//! array task takes from Slurm's or Kubernetes' environment: shards are
//! disjoint, together complete, and a partial environment is bad input.

mod common;
use common::{SCHEDULER_VARS, s};

use liverseg_phantom::{PhantomConfig, generate};
use std::path::Path;
use std::process::{Command, Output};

/// `liverseg predict --input cases --output out [extra]` with exactly the
/// scheduler variables `env` (the test's own environment's are removed).
fn predict(cases: &Path, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_liverseg"));
    c.args(["predict", "--input", s(cases), "--output", s(out)])
        .args(extra);
    for v in SCHEDULER_VARS {
        c.env_remove(v);
    }
    c.envs(env.iter().copied()).output().unwrap()
}

/// Five small phantoms, case_0 … case_4.
fn cases(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = PhantomConfig {
        dims: [40, 40, 24],
        spacing: [8.0, 8.0, 8.0],
        ..PhantomConfig::default()
    };
    for i in 0..5 {
        let p = generate(i, &cfg).unwrap();
        liverseg_io::nifti::write(
            &dir.join(format!("case_{i}.nii.gz")),
            &p.image,
            &Default::default(),
        )
        .unwrap();
    }
}

fn outputs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn shards_split_a_folder_disjointly_and_completely() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("cases");
    cases(&input);
    // By flag: 0/2 takes cases 0, 2, 4; 1/2 takes 1, 3.
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    for (out, shard) in [(&a, "0/2"), (&b, "1/2")] {
        let o = predict(&input, out, &["--shard", shard], &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        outputs(&a),
        ["case_0.nii.gz", "case_2.nii.gz", "case_4.nii.gz"]
    );
    assert_eq!(outputs(&b), ["case_1.nii.gz", "case_3.nii.gz"]);
    // The same shard from a Slurm array task (--array=5-7: task 6 is the
    // second of three) and from a Kubernetes Indexed Job pod.
    let slurm = tmp.path().join("slurm");
    let o = predict(
        &input,
        &slurm,
        &[],
        &[
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(outputs(&slurm), ["case_1.nii.gz", "case_4.nii.gz"]);
    let k8s = tmp.path().join("k8s");
    let o = predict(
        &input,
        &k8s,
        &[],
        &[("JOB_COMPLETION_INDEX", "2"), ("LIVERSEG_SHARD_COUNT", "3")],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(outputs(&k8s), ["case_2.nii.gz"]);
}

#[test]
fn bad_shards_and_partial_environments_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("cases");
    cases(&input);
    let out = tmp.path().join("out");
    for (extra, env) in [
        (&["--shard", "2/2"][..], &[][..]),
        (&["--shard", "1"][..], &[][..]),
        (&[][..], &[("SLURM_ARRAY_TASK_ID", "1")][..]),
        (&[][..], &[("JOB_COMPLETION_INDEX", "1")][..]),
        (
            &[][..],
            &[
                ("SLURM_ARRAY_TASK_ID", "8"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ][..],
        ),
    ] {
        let o = predict(&input, &out, extra, env);
        assert_eq!(o.status.code(), Some(2), "{extra:?} {env:?}");
        assert!(
            outputs(&out).is_empty(),
            "{extra:?} {env:?}: wrote something"
        );
    }
    // One case is not a folder to split.
    let one = input.join("case_0.nii.gz");
    let o = predict(&one, &tmp.path().join("m.nii.gz"), &["--shard", "0/2"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--shard splits a folder"));
}
