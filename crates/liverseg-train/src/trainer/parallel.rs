//! What a data-parallel run changes in training (see
//! `crate::distributed`): each rank's share of an epoch's samples, the
//! gradients averaged before every step, rank 0's batch-norm statistics
//! after it, and epoch figures summed over the ranks. Every rank then holds
//! the same weights and statistics, so their validations agree and they
//! take the same decisions; only rank 0 writes the run folder.

use super::Trainer;
use crate::Result;
use crate::distributed::World;
use crate::optim::is_buffer;
use candle_core::{Tensor, Var};

/// Rank `world.rank`'s share of an epoch's sample list: the list is cut
/// into global batches of `batch × size` samples and each rank takes its
/// `batch` of each. A list that does not fill the last global batch is
/// padded from its start, as PyTorch's `DistributedSampler` pads, so every
/// rank runs the same number of steps.
pub(super) fn shard(plan: &[(usize, u64)], batch: usize, world: World) -> Vec<(usize, u64)> {
    if world.size <= 1 || plan.is_empty() {
        return plan.to_vec();
    }
    let global = batch.max(1) * world.size;
    let padded = plan.len().div_ceil(global) * global;
    (0..padded)
        .map(|i| plan[i % plan.len()])
        .collect::<Vec<_>>()
        .chunks(global)
        .flat_map(|g| g[world.rank * batch..(world.rank + 1) * batch].to_vec())
        .collect()
}

impl Trainer {
    /// The world this trainer runs in.
    pub(super) fn world(&self) -> World {
        self.group.as_ref().map_or(World::SINGLE, |g| g.world())
    }

    /// Averages the accumulated gradients over the ranks.
    pub(super) fn sync_gradients(&mut self, grads: &mut [Option<Tensor>]) -> Result<()> {
        if let Some(g) = self.group.as_mut() {
            let vars: Vec<Var> = self.opt.params().iter().map(|(_, v)| v.clone()).collect();
            g.mean_gradients(&vars, grads)?;
        }
        Ok(())
    }

    /// Gives every rank rank 0's batch-norm running statistics (each rank
    /// updated its own from its own batches), as PyTorch's DDP broadcasts
    /// buffers.
    pub(super) fn sync_buffers(&mut self) -> Result<()> {
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| crate::Error::Config("variable map poisoned".into()))?;
        let mut buffers: Vec<(&String, &Var)> = data.iter().filter(|(k, _)| is_buffer(k)).collect();
        buffers.sort_by(|a, b| a.0.cmp(b.0));
        let vars: Vec<Var> = buffers.into_iter().map(|(_, v)| v.clone()).collect();
        g.broadcast_from_root(&vars)
    }

    /// A fingerprint of every variable's bits, in name order (FNV-1a): the
    /// ranks of a data-parallel run end with equal fingerprints.
    pub(super) fn weights_fingerprint(&self) -> Result<u64> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| crate::Error::Config("variable map poisoned".into()))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for n in names {
            let v = data[n]
                .as_tensor()
                .flatten_all()?
                .to_dtype(candle_core::DType::F32)?;
            for x in v.to_vec1::<f32>()? {
                for b in x.to_bits().to_le_bytes() {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        Ok(h)
    }

    /// Sums `values` (loss sums, counts) over the ranks.
    pub(super) fn sum_over_ranks(&mut self, values: &mut [f64]) -> Result<()> {
        match self.group.as_mut() {
            Some(g) => g.sum(values),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(rank: usize, size: usize) -> World {
        World {
            rank,
            size,
            local_rank: rank,
        }
    }

    #[test]
    fn shards_cover_the_epoch_in_equal_steps() {
        let plan: Vec<(usize, u64)> = (0..7).map(|i| (i, i as u64)).collect();
        assert_eq!(shard(&plan, 2, World::SINGLE), plan);
        let a = shard(&plan, 2, w(0, 2));
        let b = shard(&plan, 2, w(1, 2));
        // Global batches of 4: [0 1 | 2 3], [4 5 | 6 0(pad)].
        let ids = |v: &[(usize, u64)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(ids(&a), [0, 1, 4, 5]);
        assert_eq!(ids(&b), [2, 3, 6, 0]);
        // Every sample is someone's; each rank runs the same number of steps.
        let mut all = [ids(&a), ids(&b)].concat();
        all.sort();
        all.dedup();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        // Fewer samples than one global batch: padded, not dropped.
        let two: Vec<(usize, u64)> = vec![(0, 0), (1, 1)];
        assert_eq!(ids(&shard(&two, 1, w(2, 3))), [0]);
    }
}
