//! The batches of an epoch: which samples, in which order (a function of
//! the seed and the epoch alone), prepared by loader threads into bounded
//! queues and taken back in plan order, so the batches never depend on the
//! thread count.

use std::sync::mpsc::{Receiver, sync_channel};

use candle_core::Tensor;
use liverseg_infer::{channels_to_tensor, volumes_to_tensor};
use liverseg_transforms::{Pair, case_rng};
use rand::seq::SliceRandom;

use super::Trainer;
use crate::data::Prepared;
use crate::{Error, Result};

/// A batch: images `(B, 1, X, Y, Z)` and class indices `(B, 1, X, Y, Z)`,
/// and the names of the cases they came from (for messages).
pub(super) struct Batch {
    pub(super) x: Tensor,
    pub(super) y: Tensor,
    pub(super) cases: Vec<String>,
}

/// The batches of one epoch, taken round-robin from the loader threads'
/// queues (so in plan order); ends when a thread's queue closes.
pub(super) struct Loader {
    queues: Vec<Receiver<Result<Batch>>>,
    next: usize,
    /// Batches in the epoch.
    pub(super) batches: usize,
}

impl Iterator for Loader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let q = &self.queues[self.next % self.queues.len()];
        self.next += 1;
        q.recv().ok()
    }
}

impl Trainer {
    /// The epoch's sample list: (case index, sample number), in order.
    fn epoch_plan(&self, epoch: usize) -> Vec<(usize, u64)> {
        let n = self.dataset.train.len();
        let mut rng = case_rng(self.cfg.seed, epoch as u64, u64::MAX);
        if self.preset.augment.is_empty() || self.cfg.iterations_per_epoch == 0 {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            order
                .into_iter()
                .enumerate()
                .map(|(s, c)| (c, s as u64))
                .collect()
        } else {
            use rand::Rng;
            // Each rank of a data-parallel run takes its own batches.
            let total = self.cfg.iterations_per_epoch
                * self.cfg.batch_size
                * self.cfg.grad_accumulation
                * self.world().size;
            (0..total)
                .map(|s| (rng.random_range(0..n), s as u64))
                .collect()
        }
    }

    /// Starts the loader threads for `epoch`: `loader_threads` threads,
    /// thread `w` preparing batches `w`, `w + n`, … (rayon across a batch's
    /// samples) into its own bounded queue; [`Loader`] takes them back in
    /// order, so the batches do not depend on the thread count.
    pub(super) fn loader(&self, epoch: usize) -> Loader {
        let plan =
            super::parallel::shard(&self.epoch_plan(epoch), self.cfg.batch_size, self.world());
        let plan = std::sync::Arc::new(plan);
        let threads = self.cfg.loader_threads.max(1);
        let mut queues = Vec::with_capacity(threads);
        for w in 0..threads {
            let (tx, rx) = sync_channel(self.cfg.prefetch.div_ceil(threads).max(1));
            queues.push(rx);
            self.spawn_loader(epoch, plan.clone(), w, threads, tx);
        }
        Loader {
            queues,
            next: 0,
            batches: plan.len().div_ceil(self.cfg.batch_size.max(1)),
        }
    }

    /// One loader thread: batches `w`, `w + threads`, … of `plan`.
    fn spawn_loader(
        &self,
        epoch: usize,
        plan: std::sync::Arc<Vec<(usize, u64)>>,
        w: usize,
        threads: usize,
        tx: std::sync::mpsc::SyncSender<Result<Batch>>,
    ) {
        let cache = self.cache.clone();
        let preset = self.preset.clone();
        let cases = self.dataset.train.clone();
        let (batch_size, seed, device) = (self.cfg.batch_size, self.cfg.seed, self.device.clone());
        std::thread::spawn(move || {
            use rayon::prelude::*;
            for chunk in plan.chunks(batch_size).skip(w).step_by(threads) {
                let samples: Result<Vec<Prepared>> = chunk
                    .par_iter()
                    .map(|&(c, s)| {
                        let p = cache.get(&cases[c], &preset)?;
                        if preset.augment.is_empty() {
                            return Ok(p);
                        }
                        let mut images = vec![p.image];
                        images.extend(p.channels);
                        let pair = Pair::with_channels(images, Some(p.label))?;
                        let mut rng = case_rng(seed, epoch as u64, s);
                        let out = preset
                            .augment(pair, &mut rng)?
                            .into_iter()
                            .next()
                            .ok_or_else(|| {
                                Error::Config("augmentation produced no sample".into())
                            })?;
                        let label = out.label.ok_or_else(|| {
                            Error::Config("augmentation dropped the label".into())
                        })?;
                        Ok(Prepared {
                            image: out.image,
                            label,
                            original: p.original,
                            channels: out.channels,
                        })
                    })
                    .collect();
                let batch = samples.and_then(|s| {
                    let images: Vec<_> = s.iter().map(Prepared::inputs).collect();
                    let labels: Vec<_> = s.iter().map(|p| &p.label).collect();
                    Ok(Batch {
                        x: channels_to_tensor(&images, &device)?,
                        y: volumes_to_tensor(&labels, &device)?,
                        cases: chunk.iter().map(|&(c, _)| cases[c].name.clone()).collect(),
                    })
                });
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
    }
}
