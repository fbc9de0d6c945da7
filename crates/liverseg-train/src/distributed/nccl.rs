//! Gradients summed between GPUs by NCCL (the `nccl` feature): the NCCL
//! id travels from rank 0 over the rendezvous's TCP star, then each rank
//! joins the communicator on candle's own stream, and a sum is one
//! `ncclAllReduce` on the flattened buffer, on the device.

use super::World;
use super::tcp::Star;
use crate::{Error, Result};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::nccl::{Comm, Id, ReduceOp};
use candle_core::{CpuStorage, CudaStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

pub(super) struct Nccl {
    comm: Comm,
}

impl Nccl {
    pub(super) fn connect(world: World, tcp: &mut Star, device: &Device) -> Result<Nccl> {
        let nccl = |e: candle_core::cuda_backend::cudarc::nccl::result::NcclError| {
            Error::Distributed(format!("NCCL: {e:?}"))
        };
        let mut bytes = [0u8; 128];
        if world.rank == 0 {
            let id = Id::new().map_err(nccl)?;
            for (b, c) in bytes.iter_mut().zip(id.internal()) {
                *b = *c as u8;
            }
        }
        tcp.broadcast_bytes(&mut bytes)?;
        let mut internal = [0 as std::ffi::c_char; 128];
        for (c, b) in internal.iter_mut().zip(bytes) {
            *c = b as std::ffi::c_char;
        }
        let stream = match device {
            Device::Cuda(d) => d.cuda_stream(),
            _ => return Err(Error::Distributed("NCCL needs a CUDA device".into())),
        };
        let comm =
            Comm::from_rank(stream, world.rank, world.size, Id::uninit(internal)).map_err(nccl)?;
        Ok(Nccl { comm })
    }

    pub(super) fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        let flat = t.to_dtype(DType::F32)?.flatten_all()?.contiguous()?;
        let out = flat.apply_op1_no_bwd(&AllReduce { comm: &self.comm })?;
        Ok(out.reshape(t.shape())?)
    }
}

/// `ncclAllReduce(sum)` as a candle op, so it runs on candle's storage.
struct AllReduce<'a> {
    comm: &'a Comm,
}

impl CustomOp1 for AllReduce<'_> {
    fn name(&self) -> &'static str {
        "nccl-all-reduce"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("nccl-all-reduce runs on CUDA tensors only")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let (start, end) = l
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("nccl-all-reduce: not contiguous".into()))?;
        let send = s.as_cuda_slice::<f32>()?.slice(start..end);
        let dev = s.device().clone();
        let mut recv = dev.alloc_zeros::<f32>(end - start)?;
        self.comm
            .all_reduce(&send, &mut recv, &ReduceOp::Sum)
            .map_err(|e| candle_core::Error::Msg(format!("NCCL all-reduce: {e:?}")))?;
        Ok((CudaStorage::wrap_cuda_slice(recv, dev), l.shape().clone()))
    }
}
