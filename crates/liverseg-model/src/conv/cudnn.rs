//! cuDNN's N-d convolutions as the CUDA side of the conv ops (`op.rs`).
//!
//! The three kinds of [`super::op::ConvOp`] are exactly cuDNN's three
//! convolution routines: `Forward` is `cudnnConvolutionForward`,
//! `BackwardInput` (also a transposed convolution's forward pass) is
//! `cudnnConvolutionBackwardData`, `BackwardWeight` is
//! `cudnnConvolutionBackwardFilter`. They run on candle's own stream
//! through the cudarc that candle re-exports, so no second CUDA context or
//! cudarc exists.
//!
//! Per thread and device, the cuDNN handle, the descriptors, the chosen
//! algorithm and its workspace size per shape, and one growing workspace
//! buffer are cached
//! (cuDNN handles are neither `Send` nor `Sync`, as candle's own conv2d
//! keeps them). Algorithms come from cuDNN's heuristics, or, when
//! [`super::set_cudnn_deterministic`] asked for it, are the deterministic ones (`ALGO_1` for both
//! backward passes; every forward algorithm is deterministic).
//!
//! Precision: float32 convolutions use FMA math only (no TF32 tensor
//! cores), aiming at the 1e-4 agreement with the CPU kernels that
//! `liverseg device-check` measures (not yet run on a GPU); bfloat16
//! convolutions accumulate in float32 on tensor cores.

use super::geom::ConvGeom;
use super::op::Dims;
use crate::conv::cudnn_deterministic as deterministic;
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::{
    ConvBackwardData, ConvBackwardFilter, ConvDescriptor, ConvForward, Cudnn, CudnnDataType,
    FilterDescriptor, TensorDescriptor, sys,
};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr, ValidAsZeroBits};
use candle_core::cuda_backend::{CudaDType, DeviceId};
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result, Shape};
use half::bf16;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Which cuDNN routine a call runs, with the output's dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Routine {
    /// `(x, w) → y`.
    Forward,
    /// `(dy, w) → dx`.
    BackwardData,
    /// `(x, dy) → dw`.
    BackwardFilter,
}

/// The algorithm chosen for one routine and shape, and its workspace size.
#[derive(Clone, Copy, Debug)]
enum Algo {
    Forward(sys::cudnnConvolutionFwdAlgo_t),
    BackwardData(sys::cudnnConvolutionBwdDataAlgo_t),
    BackwardFilter(sys::cudnnConvolutionBwdFilterAlgo_t),
}

/// What a plan is cached under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    device: DeviceId,
    routine: Routine,
    dtype: DType,
    dims: Dims,
    geom: [[usize; 3]; 3],
    deterministic: bool,
}

/// Everything a call of one shape needs, made once: the descriptors, the
/// algorithm and its workspace size.
struct Plan<T: CudnnDataType> {
    d: Descriptors<T>,
    algo: Algo,
    bytes: usize,
}

/// A plan of either element type (one cache holds both).
enum AnyPlan {
    F32(Plan<f32>),
    Bf16(Plan<bf16>),
}

/// The element types with cached plans.
trait Element: CudnnDataType + Sized {
    fn wrap(p: Plan<Self>) -> AnyPlan;
    fn get(p: &AnyPlan) -> Option<&Plan<Self>>;
}

impl Element for f32 {
    fn wrap(p: Plan<Self>) -> AnyPlan {
        AnyPlan::F32(p)
    }
    fn get(p: &AnyPlan) -> Option<&Plan<Self>> {
        match p {
            AnyPlan::F32(p) => Some(p),
            AnyPlan::Bf16(_) => None,
        }
    }
}

impl Element for bf16 {
    fn wrap(p: Plan<Self>) -> AnyPlan {
        AnyPlan::Bf16(p)
    }
    fn get(p: &AnyPlan) -> Option<&Plan<Self>> {
        match p {
            AnyPlan::Bf16(p) => Some(p),
            AnyPlan::F32(_) => None,
        }
    }
}

thread_local! {
    static HANDLES: RefCell<HashMap<DeviceId, Arc<Cudnn>>> = RefCell::new(HashMap::new());
    static PLANS: RefCell<HashMap<PlanKey, AnyPlan>> = RefCell::new(HashMap::new());
    static WORKSPACES: RefCell<HashMap<DeviceId, CudaSlice<u8>>> = RefCell::new(HashMap::new());
}

fn handle(dev: &CudaDevice) -> Result<Arc<Cudnn>> {
    HANDLES.with(|h| {
        if let Some(c) = h.borrow().get(&dev.id()) {
            return Ok(c.clone());
        }
        let c = Cudnn::new(dev.cuda_stream()).map_err(candle_core::Error::wrap)?;
        h.borrow_mut().insert(dev.id(), c.clone());
        Ok(c)
    })
}

fn c_ints(v: &[usize]) -> Result<Vec<i32>> {
    v.iter()
        .map(|&d| {
            i32::try_from(d).map_err(|_| {
                candle_core::Error::Msg(format!("cudnn: dimension {d} exceeds i32::MAX"))
            })
        })
        .collect()
}

/// A packed `(N, C, D, H, W)` tensor descriptor.
fn tensor<T: CudnnDataType>(cudnn: &Arc<Cudnn>, dims: &[usize; 5]) -> Result<TensorDescriptor<T>> {
    let d = c_ints(dims)?;
    let mut strides = [1i32; 5];
    for a in (0..4).rev() {
        strides[a] = strides[a + 1]
            .checked_mul(d[a + 1])
            .ok_or_else(|| candle_core::Error::Msg("cudnn: tensor too large".into()))?;
    }
    cudnn
        .create_nd_tensor::<T>(&d, &strides)
        .map_err(candle_core::Error::wrap)
}

/// The descriptors of one shape (made once per shape, see [`Plan`]).
struct Descriptors<T: CudnnDataType> {
    conv: ConvDescriptor<f32>,
    x: TensorDescriptor<T>,
    w: FilterDescriptor<T>,
    y: TensorDescriptor<T>,
}

fn descriptors<T: CudnnDataType>(
    cudnn: &Arc<Cudnn>,
    geom: &ConvGeom,
    dims: &Dims,
) -> Result<Descriptors<T>> {
    let wrap = candle_core::Error::wrap;
    let mut conv = cudnn
        .create_convnd::<f32>(
            &c_ints(&geom.padding)?,
            &c_ints(&geom.stride)?,
            &c_ints(&geom.dilation)?,
            sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
        )
        .map_err(wrap)?;
    // float32 without TF32 (the 1e-4 agreement with the CPU); bfloat16 on
    // tensor cores with float32 accumulation (the descriptor's type).
    let math = if T::DATA_TYPE == sys::cudnnDataType_t::CUDNN_DATA_FLOAT {
        sys::cudnnMathType_t::CUDNN_FMA_MATH
    } else {
        sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
    };
    conv.set_math_type(math).map_err(wrap)?;
    let w = cudnn
        .create_nd_filter::<T>(
            sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
            &c_ints(&dims.w)?,
        )
        .map_err(wrap)?;
    Ok(Descriptors {
        conv,
        x: tensor(cudnn, &dims.x)?,
        w,
        y: tensor(cudnn, &dims.y)?,
    })
}

/// The algorithm for `routine` on these descriptors, and its workspace.
fn choose<T: CudnnDataType>(routine: Routine, d: &Descriptors<T>) -> Result<(Algo, usize)> {
    use sys::cudnnConvolutionBwdDataAlgo_t as BD;
    use sys::cudnnConvolutionBwdFilterAlgo_t as BF;
    let wrap = candle_core::Error::wrap;
    let det = deterministic();
    Ok(match routine {
        Routine::Forward => {
            let op = ConvForward {
                conv: &d.conv,
                x: &d.x,
                w: &d.w,
                y: &d.y,
            };
            let algo = op.pick_algorithm().map_err(wrap)?;
            (
                Algo::Forward(algo),
                op.get_workspace_size(algo).map_err(wrap)?,
            )
        }
        Routine::BackwardData => {
            let op = ConvBackwardData {
                conv: &d.conv,
                dx: &d.x,
                w: &d.w,
                dy: &d.y,
            };
            let algo = if det {
                BD::CUDNN_CONVOLUTION_BWD_DATA_ALGO_1
            } else {
                op.pick_algorithm().map_err(wrap)?
            };
            (
                Algo::BackwardData(algo),
                op.get_workspace_size(algo).map_err(wrap)?,
            )
        }
        Routine::BackwardFilter => {
            let op = ConvBackwardFilter {
                conv: &d.conv,
                x: &d.x,
                dw: &d.w,
                dy: &d.y,
            };
            let algo = if det {
                BF::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1
            } else {
                op.pick_algorithm().map_err(wrap)?
            };
            (
                Algo::BackwardFilter(algo),
                op.get_workspace_size(algo).map_err(wrap)?,
            )
        }
    })
}

/// Runs `f` with a workspace of at least `bytes` on `dev`, grown as needed
/// and kept for the next call on this thread.
fn with_workspace<R>(
    dev: &CudaDevice,
    bytes: usize,
    f: impl FnOnce(Option<&mut CudaSlice<u8>>) -> Result<R>,
) -> Result<R> {
    if bytes == 0 {
        return f(None);
    }
    WORKSPACES.with(|ws| {
        let mut ws = ws.borrow_mut();
        let grow = ws.get(&dev.id()).is_none_or(|w| w.len() < bytes);
        if grow {
            // Freed before the larger one is allocated.
            ws.remove(&dev.id());
            ws.insert(dev.id(), dev.alloc_zeros::<u8>(bytes)?);
        }
        f(ws.get_mut(&dev.id()))
    })
}

/// The contiguous data of a storage as a typed slice view.
fn view<'a, T: CudaDType>(
    s: &'a CudaStorage,
    l: &Layout,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, T>> {
    let (start, end) = l.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::Msg("cudnn: the convolution ops take contiguous operands".into())
    })?;
    Ok(s.as_cuda_slice::<T>()?.slice(start..end))
}

#[allow(unsafe_code)]
fn run_typed<T>(
    routine: Routine,
    geom: &ConvGeom,
    dims: &Dims,
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
) -> Result<CudaStorage>
where
    T: Element + CudaDType + DeviceRepr + ValidAsZeroBits + candle_core::WithDType,
{
    let dev = s1.device.clone();
    let key = PlanKey {
        device: dev.id(),
        routine,
        dtype: T::DTYPE,
        dims: *dims,
        geom: [geom.padding, geom.stride, geom.dilation],
        deterministic: deterministic(),
    };
    let out_dims = match routine {
        Routine::Forward => dims.y,
        Routine::BackwardData => dims.x,
        Routine::BackwardFilter => dims.w,
    };
    let a = view::<T>(s1, l1)?;
    let b = view::<T>(s2, l2)?;
    // SAFETY: the buffer is fully written by the launch below before it is
    // read: with beta = 0 cuDNN writes every output element and never reads
    // the old contents.
    let mut out = unsafe { dev.alloc::<T>(out_dims.iter().product())? };
    let wrap = candle_core::Error::wrap;
    let (one, zero) = (T::one(), T::zero());
    PLANS.with(|plans| -> Result<()> {
        let mut plans = plans.borrow_mut();
        let plan = match plans.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let d = descriptors::<T>(&handle(&dev)?, geom, dims)?;
                let (algo, bytes) = choose(routine, &d)?;
                e.insert(T::wrap(Plan { d, algo, bytes }))
            }
        };
        let plan = T::get(plan)
            .ok_or_else(|| candle_core::Error::Msg("cudnn: plan of another type".into()))?;
        let d = &plan.d;
        with_workspace(&dev, plan.bytes, |ws| {
            // SAFETY: every descriptor was built from `dims` for element
            // type `T`, and the operands are contiguous views of exactly
            // those sizes (checked by `ConvOp::dims` and `view`), so cuDNN
            // reads and writes inside the buffers; the workspace holds at
            // least the size cuDNN asked for this algorithm.
            unsafe {
                match plan.algo {
                    Algo::Forward(algo) => ConvForward {
                        conv: &d.conv,
                        x: &d.x,
                        w: &d.w,
                        y: &d.y,
                    }
                    .launch(algo, ws, (one, zero), &a, &b, &mut out),
                    Algo::BackwardData(algo) => ConvBackwardData {
                        conv: &d.conv,
                        dx: &d.x,
                        w: &d.w,
                        dy: &d.y,
                    }
                    .launch(algo, ws, (one, zero), &mut out, &b, &a),
                    Algo::BackwardFilter(algo) => ConvBackwardFilter {
                        conv: &d.conv,
                        x: &d.x,
                        dw: &d.w,
                        dy: &d.y,
                    }
                    .launch(algo, ws, (one, zero), &a, &mut out, &b),
                }
            }
            .map_err(wrap)
        })
    })?;
    Ok(CudaStorage::wrap_cuda_slice(out, dev))
}

/// Runs `routine` on the two operands in the order the conv op holds them:
/// `(x, w)` for `Forward`, `(dy, w)` for `BackwardData`, `(x, dy)` for
/// `BackwardFilter`; float32 or bfloat16.
pub(crate) fn run(
    routine: Routine,
    geom: &ConvGeom,
    dims: &Dims,
    a: (&CudaStorage, &Layout),
    b: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    // cuDNN computes the output extent from the input's; the CPU kernels
    // also accept the rare transposed geometry whose output padding reaches
    // past the stride (dilation > stride), which cuDNN cannot express.
    let spatial = |d: [usize; 5]| [d[2], d[3], d[4]];
    if geom.conv_out(spatial(dims.x)) != Some(spatial(dims.y)) {
        candle_core::bail!(
            "cudnn: {:?} does not convolve to {:?} with {geom:?}",
            spatial(dims.x),
            spatial(dims.y)
        );
    }
    if a.0.dtype() != b.0.dtype() {
        candle_core::bail!(
            "cudnn: operand types differ ({:?}, {:?})",
            a.0.dtype(),
            b.0.dtype()
        );
    }
    let out = match a.0.dtype() {
        DType::F32 => run_typed::<f32>(routine, geom, dims, a, b)?,
        DType::BF16 => run_typed::<bf16>(routine, geom, dims, a, b)?,
        other => candle_core::bail!("cudnn: convolutions take f32 or bf16, not {other:?}"),
    };
    let shape = match routine {
        Routine::Forward => dims.y,
        Routine::BackwardData => dims.x,
        Routine::BackwardFilter => dims.w,
    };
    Ok((out, Shape::from(shape.to_vec())))
}
