//! Data-parallel training: two `liverseg train` processes meeting through
//! a rendezvous file (as `torchrun` would start them: `RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`), averaging gradients over TCP.

mod common;
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn rank(dir: &Path, cfg: &Path, rank: usize, rendezvous: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_liverseg"))
        .current_dir(dir)
        .args([
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            "runs/dp",
        ])
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", "2")
        .env("LOCAL_RANK", rank.to_string())
        .env(
            "LIVERSEG_RENDEZVOUS",
            format!("file:{}", rendezvous.display()),
        )
        .env("LIVERSEG_RENDEZVOUS_TIMEOUT", "120")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The `key=value` field of the log lines holding `what`.
fn logged(log: &str, what: &str, key: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .map(|v| v.trim_matches('"').to_string())
        })
        .collect()
}

#[test]
fn two_ranks_train_the_same_weights_and_rank_zero_writes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    common::tiny_dataset(&t.join("data/Phantom"), 5);
    let cfg = common::tiny_train_config(t, Some(t.join("cache")));
    let rdv = t.join("rendezvous");
    let children = [rank(t, &cfg, 0, &rdv), rank(t, &cfg, 1, &rdv)];
    for (r, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "rank {r}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let run = t.join("runs/dp");
    assert!(run.join("best/model.safetensors").is_file());
    assert!(run.join("last/state.json").is_file());
    let log0 = std::fs::read_to_string(run.join("train.log")).unwrap();
    let log1 = std::fs::read_to_string(run.join("train.rank-1.log")).unwrap();
    // Averaged gradients and rank 0's statistics: the same weights, bit
    // for bit, and the same (global) epoch losses on both ranks.
    let f0 = logged(&log0, "final weights", "fingerprint");
    let f1 = logged(&log1, "final weights", "fingerprint");
    assert_eq!(f0.len(), 1, "{log0}");
    assert_eq!(f0, f1);
    let l0 = logged(&log0, "epoch done", "train_loss");
    assert_eq!(l0.len(), 2, "{log0}");
    assert_eq!(l0, logged(&log1, "epoch done", "train_loss"));
    // Rank 1 wrote nothing but its log; no temporaries are left.
    let mut names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "best",
            "config.toml",
            "curves.png",
            "last",
            "metrics.csv",
            "metrics.jsonl",
            "train.log",
            "train.rank-1.log"
        ],
        "{names:?}"
    );
    // Three training cases of the five (the default split), one per
    // batch, two ranks: two steps each, the last global batch padded.
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
}
