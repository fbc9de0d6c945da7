//! Batch prediction: a folder of cases or a manifest, one shard of it,
//! with the model loaded once and three stages overlapped.
//!
//! A reader thread reads and preprocesses the next case while the network
//! runs on the current one, and a writer thread maps the previous one back,
//! post-processes it and writes its outputs. The stages hand cases over
//! through rendezvous channels, so at most three cases are in memory at
//! once (one per stage): the peak is about three times one case's
//! `liverseg predict`, plus the model.
//!
//! Every case that ends leaves a record ([`journal`]); a rerun skips what
//! is done. SIGTERM or SIGINT ([`on_termination`]) stops the reader and
//! the network within a window; a case past the network is finished, one
//! before it is abandoned with nothing written, and the rerun resumes.

pub mod journal;
pub mod manifest;

use crate::commands::predict::{
    CaseOutputs, CaseReport, Input, Loaded, PredictArgs, case_report, load_case, print_case,
    write_outputs,
};
use crate::exit::bad_input;
use crate::shard::Shard;
use anyhow::{Context, Result};
use journal::{Fingerprint, Journal, Record, ShardPlan, Status, Written};
use liverseg_infer::{NetworkOutput, PredictOptions, Predictor};
use liverseg_io::Overwrite;
use manifest::BatchCase;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

/// A flag that SIGTERM (a Slurm time limit, a preemption, `kubectl
/// delete`) or SIGINT sets; a second signal ends the process at once.
pub fn on_termination() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&flag))
            .context("cannot handle termination signals")?;
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .context("cannot handle termination signals")?;
    }
    Ok(flag)
}

/// True when `e` is prediction stopped by [`on_termination`]'s flag.
fn is_cancelled(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<liverseg_infer::Error>(),
            Some(liverseg_infer::Error::Cancelled)
        )
    })
}

/// Rewords a cancelled prediction for the user.
pub fn interrupted(e: anyhow::Error) -> anyhow::Error {
    if is_cancelled(&e) {
        anyhow::anyhow!("interrupted by a termination signal; nothing was written")
    } else {
        e
    }
}

/// What a batch runs with.
pub struct Batch<'a> {
    pub args: &'a PredictArgs,
    pub predictor: &'a Predictor,
    pub opts: &'a PredictOptions,
    /// The model's hash, recorded with each case.
    pub model_sha256: String,
    /// Set by a termination signal.
    pub cancel: Arc<AtomicBool>,
}

/// One case to run.
struct Job {
    case: BatchCase,
    to: CaseOutputs,
    inputs: Vec<Fingerprint>,
    overwrite: Overwrite,
}

/// Where a case's outputs go inside the output folder.
fn outputs_of(args: &PredictArgs, c: &BatchCase) -> CaseOutputs {
    let ext = if !args.formats().nifti {
        "dcm"
    } else {
        "nii.gz"
    };
    let id = &c.id;
    CaseOutputs {
        mask: args
            .output
            .join(c.output.clone().unwrap_or_else(|| format!("{id}.{ext}"))),
        probabilities: args
            .save_probabilities
            .as_ref()
            .map(|_| args.output.join(format!("{id}_probabilities.nii.gz"))),
        overlay: args
            .overlay
            .as_ref()
            .map(|_| args.output.join(format!("{id}_overlay.png"))),
    }
}

/// Counts of one run.
#[derive(Debug, Default)]
struct Tally {
    done: usize,
    failed: usize,
    abandoned: usize,
    reports: Vec<CaseReport>,
}

impl Batch<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn record(&self, job: &Job, shard: Shard, status: Status) -> Record {
        Record {
            id: job.case.id.clone(),
            status,
            inputs: job.inputs.clone(),
            outputs: Vec::new(),
            volumes_ml: BTreeMap::new(),
            seconds: 0.0,
            ended_at: journal::now(),
            shard: shard.to_string(),
            liverseg_version: env!("CARGO_PKG_VERSION").to_string(),
            model_sha256: self.model_sha256.clone(),
            error: None,
        }
    }

    /// Decides, from the records, which of `mine` still need running.
    /// Returns the jobs, how many are done already, and the ids recorded
    /// as failed and not retried.
    fn plan(
        &self,
        mine: Vec<BatchCase>,
        shard: Shard,
        journal: &mut Journal,
    ) -> Result<(Vec<Job>, usize, Vec<String>)> {
        let args = self.args;
        let records = journal::load(&args.output)
            .with_context(|| format!("{}: cannot read the records", args.output.display()))?;
        let (mut jobs, mut done, mut failed) = (Vec::new(), 0, Vec::new());
        for case in mine {
            let to = outputs_of(args, &case);
            let fps: std::io::Result<Vec<Fingerprint>> =
                case.inputs.iter().map(|p| Fingerprint::of(p)).collect();
            let history = records.get(&case.id).map(Vec::as_slice).unwrap_or(&[]);
            // Outputs an earlier run of this batch wrote are its own to
            // replace.
            let ours: Vec<&str> = history
                .iter()
                .flat_map(|r| r.outputs.iter().map(|w| w.path.as_str()))
                .collect();
            let targets = [
                Some(&to.mask),
                to.probabilities.as_ref(),
                to.overlay.as_ref(),
            ];
            let replaceable = targets
                .iter()
                .flatten()
                .all(|t| !t.exists() || ours.contains(&t.display().to_string().as_str()));
            // `--force` redoes a case; it never replaces a file the batch
            // did not write.
            let overwrite = if replaceable {
                Overwrite::Allow
            } else {
                Overwrite::Never
            };
            // An input that cannot be fingerprinted (missing, unreadable)
            // fails the case with no inputs recorded.
            let (fps, unreadable) = match fps {
                Ok(f) => (f, None),
                Err(e) => (Vec::new(), Some(format!("cannot read the input: {e}"))),
            };
            if let Some(last) = history.last().filter(|_| !args.force) {
                if last.is_current(&fps, &self.model_sha256) {
                    done += 1;
                    continue;
                }
                if last.status == Status::Failed
                    && last.inputs == fps
                    && last.model_sha256 == self.model_sha256
                    && !args.retry_failed
                {
                    failed.push(case.id);
                    continue;
                }
            }
            if let Some(why) = unreadable {
                let job = Job {
                    case,
                    to,
                    inputs: fps,
                    overwrite,
                };
                let mut r = self.record(&job, shard, Status::Failed);
                say_failed(&job, &why);
                r.error = Some(why);
                journal.append(&r)?;
                failed.push(job.case.id);
                continue;
            }
            jobs.push(Job {
                case,
                to,
                inputs: fps,
                overwrite,
            });
        }
        Ok((jobs, done, failed))
    }

    /// The writer's part of one case: map back, decide, write, record.
    fn finish(
        &self,
        job: &Job,
        shard: Shard,
        journal: &mut Journal,
        loaded: Loaded,
        net: NetworkOutput,
        t0: Instant,
    ) -> Result<CaseReport> {
        let (args, predictor) = (self.args, self.predictor);
        let pred = predictor.finish(loaded.prepared, net, self.opts)?;
        let mut started = |paths: &[PathBuf]| -> Result<()> {
            let mut r = self.record(job, shard, Status::Started);
            r.outputs = paths
                .iter()
                .map(|p| Written {
                    path: p.display().to_string(),
                    size: 0,
                })
                .collect();
            Ok(journal.append(&r)?)
        };
        let written = write_outputs(
            args,
            &pred,
            loaded.ct.as_ref(),
            loaded.series.as_ref(),
            &job.to,
            job.overwrite,
            &mut started,
        )?;
        let report = case_report(predictor, &job.case.inputs[0], &job.to.mask, &pred, t0);
        let mut r = self.record(job, shard, Status::Ok);
        r.outputs = written
            .iter()
            .map(|p| {
                let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                Written {
                    path: p.display().to_string(),
                    size,
                }
            })
            .collect();
        r.volumes_ml = report.volumes_ml.clone();
        r.seconds = report.seconds;
        journal.append(&r)?;
        Ok(report)
    }
}

fn say_failed(job: &Job, why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "liverseg: {}: case {} failed: {why}",
        job.case.inputs[0].display(),
        job.case.id
    );
}

/// Runs a batch: `cases` (any order), the share `shard` gives (all
/// without one). Exit 2 at the end when any case failed (this run or an
/// earlier one, not retried); an error after a termination signal.
pub fn run(b: &Batch<'_>, mut cases: Vec<BatchCase>, shard: Option<Shard>) -> Result<()> {
    let args = b.args;
    cases.sort_by(|x, y| x.id.cmp(&y.id));
    let total = cases.len();
    let all: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    let shard = shard.unwrap_or(Shard { index: 0, count: 1 });
    let mine = shard.take(cases);
    tracing::info!(
        "shard {shard}: {} of the {total} cases of {}",
        mine.len(),
        args.input().display()
    );
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("{}: cannot create", args.output.display()))?;
    let io = |e: std::io::Error| anyhow::anyhow!("{}: {e}", args.output.display());
    ShardPlan {
        shard: shard.to_string(),
        all,
        mine: mine.iter().map(|c| c.id.clone()).collect(),
        started_at: journal::now(),
    }
    .write(&args.output, shard.index, shard.count)
    .map_err(io)?;
    let mut journal = Journal::open(&args.output, shard.index, shard.count).map_err(io)?;
    let journal_path = journal.path().to_path_buf();
    let (jobs, done_before, failed_before) = b.plan(mine, shard, &mut journal)?;
    if done_before > 0 || !failed_before.is_empty() {
        tracing::info!(
            "{done_before} case(s) done by an earlier run, {} recorded as failed (--retry-failed retries them): {} to run",
            failed_before.len(),
            jobs.len()
        );
    }
    let bar = crate::progress::bar(jobs.len() as u64, "cases");
    let tally = pipeline(b, &jobs, shard, journal, &bar);
    bar.finish_and_clear();
    let tally = tally?;
    let failed = tally.failed + failed_before.len();
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cases": tally.reports,
                "failed": failed,
                "done_before": done_before,
                "records": journal_path.display().to_string(),
            }))?
        )?;
    }
    if b.cancelled() {
        return Err(anyhow::anyhow!(
            "interrupted by a termination signal: {} case(s) done in this run, {} abandoned with nothing written, {} not started; rerun the same command to resume",
            tally.done,
            tally.abandoned,
            jobs.len() - tally.done - tally.failed - tally.abandoned
        ));
    }
    if failed > 0 {
        return Err(bad_input(format!(
            "{failed} of the shard's cases failed (reasons in {})",
            journal_path.display()
        )));
    }
    Ok(())
}

/// Threads of the reader's and of the writer's pools: a quarter of the
/// network's (at least one).
fn side_threads() -> usize {
    (rayon::current_num_threads() / 4).max(1)
}

type Read = (usize, Result<Loaded>, Instant);
type Inferred = (usize, Result<(Loaded, NetworkOutput)>, Instant);

/// Runs `jobs` through the three stages.
fn pipeline(
    b: &Batch<'_>,
    jobs: &[Job],
    shard: Shard,
    mut journal: Journal,
    bar: &indicatif::ProgressBar,
) -> Result<Tally> {
    let (args, predictor, opts) = (b.args, b.predictor, b.opts);
    let (to_net, from_reader) = sync_channel::<Read>(0);
    let (to_writer, from_net) = sync_channel::<Inferred>(0);
    // The reader and the writer each parallelise in a pool of their own:
    // in the network's (the global pool), a thread waiting inside the
    // network's parallel loop would steal and run a long task of another
    // case's reading, and the network would wait for it.
    let side = side_threads();
    let pool = || {
        rayon::ThreadPoolBuilder::new()
            .num_threads(side)
            .build()
            .context("cannot start the batch's threads")
    };
    let (read_pool, write_pool) = (pool()?, pool()?);
    std::thread::scope(|s| {
        s.spawn(move || {
            for (i, job) in jobs.iter().enumerate() {
                if b.cancelled() {
                    break;
                }
                let t0 = Instant::now();
                let loaded = read_pool.install(|| {
                    Input::of(&job.case.inputs)
                        .and_then(|input| load_case(args, predictor, opts, &input))
                });
                if to_net.send((i, loaded, t0)).is_err() {
                    break;
                }
            }
        });
        let writer = s.spawn(move || -> Result<Tally> {
            let mut tally = Tally::default();
            for (i, r, t0) in from_net {
                let job = &jobs[i];
                let r = r.and_then(|(loaded, net)| {
                    write_pool.install(|| b.finish(job, shard, &mut journal, loaded, net, t0))
                });
                match r {
                    Ok(report) => {
                        if !args.json {
                            bar.suspend(|| print_case(&report))?;
                        }
                        tally.reports.push(report);
                        tally.done += 1;
                    }
                    Err(e) if is_cancelled(&e) => tally.abandoned += 1,
                    Err(e) => {
                        let mut rec = b.record(job, shard, Status::Failed);
                        rec.error = Some(format!("{e:#}"));
                        rec.seconds = t0.elapsed().as_secs_f64();
                        bar.suspend(|| say_failed(job, &format!("{e:#}")));
                        journal.append(&rec)?;
                        tally.failed += 1;
                    }
                }
                bar.inc(1);
            }
            Ok(tally)
        });
        for (i, loaded, t0) in from_reader {
            if b.cancelled() {
                // Read but not run: abandoned, nothing written.
                break;
            }
            let r = loaded.and_then(|l| {
                let net = predictor.infer(&l.prepared, opts)?;
                Ok((l, net))
            });
            if to_writer.send((i, r, t0)).is_err() {
                break;
            }
        }
        drop(to_writer);
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?
    })
}
