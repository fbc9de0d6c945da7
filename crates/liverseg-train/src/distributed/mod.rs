//! Data-parallel training over several processes: one process per GPU (or
//! per CPU socket or node), each training on its own share of every
//! epoch's samples, gradients averaged before every optimiser step.
//!
//! - [`World`]: this process's rank and the process count, from the
//!   variables `srun` sets (`SLURM_PROCID`, `SLURM_NTASKS`,
//!   `SLURM_LOCALID`) or those `torchrun` sets (`RANK`, `WORLD_SIZE`,
//!   `LOCAL_RANK`).
//! - Rendezvous: rank 0 listens on `MASTER_ADDR:MASTER_PORT` (as
//!   `torchrun`), or, with `LIVERSEG_RENDEZVOUS=file:PATH`, on a free port
//!   of `MASTER_ADDR` (default 127.0.0.1) that it writes to `PATH` for the
//!   others to read.
//! - [`Group`]: the collectives training needs: the mean of every
//!   gradient, flattened into one buffer; rank 0's batch-norm statistics to
//!   everyone; a barrier. They run over the rendezvous's TCP connections
//!   (`tcp.rs`: rank 0 sums the ranks' buffers in rank order, so the
//!   result does not depend on arrival order), or over NCCL between GPUs
//!   (`nccl.rs`, the `nccl` feature), with the NCCL id shared over TCP.
//!
//! For a network of this size, nnU-Net's advice holds: training the five
//! folds at once, one per GPU, uses several GPUs better than one
//! data-parallel run (`deploy/slurm/train-folds.sbatch`).

#[cfg(feature = "nccl")]
mod nccl;
mod tcp;

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use std::time::Duration;

/// This process's place among the training processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct World {
    /// 0 for the process that writes the run folder.
    pub rank: usize,
    /// Processes in the run.
    pub size: usize,
    /// Rank among the processes on this machine (picks the GPU).
    pub local_rank: usize,
}

impl World {
    /// A single process.
    pub const SINGLE: World = World {
        rank: 0,
        size: 1,
        local_rank: 0,
    };

    /// The world the environment describes: `RANK`/`WORLD_SIZE`/
    /// `LOCAL_RANK` when `WORLD_SIZE` is set, else `SLURM_PROCID`/
    /// `SLURM_NTASKS`/`SLURM_LOCALID` when `SLURM_NTASKS` is more than 1,
    /// else a single process.
    pub fn from_env() -> Result<World> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`World::from_env`] over any variable lookup (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<World> {
        let num = |k: &str| -> Result<Option<usize>> {
            var(k)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| Error::Config(format!("{k}={v:?}: expected a whole number")))
                })
                .transpose()
        };
        let (rank, size, local) = if var("WORLD_SIZE").is_some() {
            (num("RANK")?, num("WORLD_SIZE")?, num("LOCAL_RANK")?)
        } else if num("SLURM_NTASKS")?.is_some_and(|n| n > 1) {
            (
                num("SLURM_PROCID")?,
                num("SLURM_NTASKS")?,
                num("SLURM_LOCALID")?,
            )
        } else {
            return Ok(World::SINGLE);
        };
        let size = size.unwrap_or(1).max(1);
        let rank = rank.unwrap_or(0);
        if rank >= size {
            return Err(Error::Config(format!(
                "rank {rank} is not below the world size {size}"
            )));
        }
        Ok(World {
            rank,
            size,
            local_rank: local.unwrap_or(rank),
        })
    }

    /// Whether this process writes the run folder (rank 0).
    pub fn is_writer(&self) -> bool {
        self.rank == 0
    }
}

/// Where the processes meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rendezvous {
    /// Rank 0 listens on this address and port; the others connect.
    Tcp(String, u16),
    /// Rank 0 listens on a free port of the address and writes
    /// `address:port` to the file; the others read it.
    File(std::path::PathBuf, String),
}

impl Rendezvous {
    /// From `LIVERSEG_RENDEZVOUS=file:PATH`, else `MASTER_ADDR` (default
    /// 127.0.0.1) and `MASTER_PORT` (default 29500, torchrun's).
    pub fn from_env() -> Result<Rendezvous> {
        let addr = std::env::var("MASTER_ADDR").unwrap_or_else(|_| "127.0.0.1".into());
        if let Ok(r) = std::env::var("LIVERSEG_RENDEZVOUS") {
            return match r.strip_prefix("file:") {
                Some(p) if !p.is_empty() => Ok(Rendezvous::File(p.into(), addr)),
                _ => Err(Error::Config(format!(
                    "LIVERSEG_RENDEZVOUS={r:?}: expected file:PATH"
                ))),
            };
        }
        let port = match std::env::var("MASTER_PORT") {
            Ok(p) => p
                .parse()
                .map_err(|_| Error::Config(format!("MASTER_PORT={p:?}: expected a port")))?,
            Err(_) => 29500,
        };
        Ok(Rendezvous::Tcp(addr, port))
    }
}

/// How long ranks wait for each other at the rendezvous
/// (`LIVERSEG_RENDEZVOUS_TIMEOUT` seconds, default 600).
fn rendezvous_timeout() -> Duration {
    let s = std::env::var("LIVERSEG_RENDEZVOUS_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(s)
}

/// The collectives of a data-parallel run.
pub struct Group {
    world: World,
    tcp: tcp::Star,
    #[cfg(feature = "nccl")]
    nccl: Option<nccl::Nccl>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("world", &self.world).finish()
    }
}

impl Group {
    /// Meets the other ranks. `token` (the run's configuration, say) must
    /// be the same for every rank: processes of different runs that meet
    /// by mistake are refused. On CUDA (with the `nccl` feature) the
    /// gradients then travel over NCCL.
    pub fn connect(
        world: World,
        rendezvous: &Rendezvous,
        token: &str,
        device: &Device,
    ) -> Result<Group> {
        let tcp = tcp::Star::connect(world, rendezvous, token, rendezvous_timeout())?;
        #[cfg(feature = "nccl")]
        let mut tcp = tcp;
        #[cfg(feature = "nccl")]
        let nccl = if device.is_cuda() {
            Some(nccl::Nccl::connect(world, &mut tcp, device)?)
        } else {
            None
        };
        #[cfg(not(feature = "nccl"))]
        if device.is_cuda() && world.size > 1 {
            tracing::warn!(
                "this build has no NCCL (the `nccl` feature): gradients travel through the CPU over TCP"
            );
        }
        tracing::info!(
            rank = world.rank,
            size = world.size,
            "data-parallel group formed"
        );
        Ok(Group {
            world,
            tcp,
            #[cfg(feature = "nccl")]
            nccl,
        })
    }

    /// This process's place.
    pub fn world(&self) -> World {
        self.world
    }

    /// Replaces each gradient with its mean over the ranks. A gradient a
    /// rank lacks counts as zeros of its variable's shape, so every rank
    /// sends a buffer of the same length; all gradients travel as one
    /// flattened float32 buffer.
    pub fn mean_gradients(&mut self, vars: &[Var], grads: &mut [Option<Tensor>]) -> Result<()> {
        let parts = vars
            .iter()
            .zip(grads.iter())
            .map(|(v, g)| match g {
                Some(g) => Ok(g.to_dtype(DType::F32)?.flatten_all()?),
                None => Ok(Tensor::zeros(v.elem_count(), DType::F32, v.device())?),
            })
            .collect::<Result<Vec<_>>>()?;
        if parts.is_empty() {
            return Ok(());
        }
        let flat = Tensor::cat(&parts, 0)?;
        let summed = self.all_reduce_sum(&flat)?;
        let mean = (summed / self.world.size as f64)?;
        let mut offset = 0;
        for (v, g) in vars.iter().zip(grads.iter_mut()) {
            let n = v.elem_count();
            *g = Some(mean.narrow(0, offset, n)?.reshape(v.shape())?);
            offset += n;
        }
        Ok(())
    }

    /// The element-wise sum of `t` (float32, any shape) over the ranks.
    pub fn all_reduce_sum(&mut self, t: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "nccl")]
        if let Some(n) = &self.nccl {
            return n.all_reduce_sum(t);
        }
        let mut data = t.flatten_all()?.to_vec1::<f32>()?;
        self.tcp.all_reduce_sum(&mut data)?;
        Ok(Tensor::from_vec(data, t.shape(), t.device())?)
    }

    /// Sets every variable to rank 0's value (batch-norm running
    /// statistics after a step, so every rank validates the same network).
    pub fn broadcast_from_root(&mut self, vars: &[Var]) -> Result<()> {
        if vars.is_empty() {
            return Ok(());
        }
        let flat = Tensor::cat(
            &vars
                .iter()
                .map(|v| v.as_tensor().to_dtype(DType::F32)?.flatten_all())
                .collect::<candle_core::Result<Vec<_>>>()?,
            0,
        )?;
        let mut data = flat.to_vec1::<f32>()?;
        self.tcp.broadcast_from_root(&mut data)?;
        let mut offset = 0;
        for v in vars {
            let n = v.elem_count();
            let t = Tensor::from_slice(&data[offset..offset + n], v.shape(), v.device())?;
            v.set(&t.to_dtype(v.dtype())?)?;
            offset += n;
        }
        Ok(())
    }

    /// Waits until every rank has reached the same point.
    pub fn barrier(&mut self) -> Result<()> {
        self.tcp.all_reduce_sum(&mut [0.0f32])
    }

    /// The sum of a few numbers over the ranks (losses, counts).
    pub fn sum(&mut self, values: &mut [f64]) -> Result<()> {
        self.tcp.all_reduce_sum(values)
    }
}

#[cfg(test)]
mod tests;
