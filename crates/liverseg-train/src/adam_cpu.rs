//! Adam's update of one float32 parameter on the CPU in a single pass.
//!
//! Written with candle's element-wise ops (`optim::adam_update`) one
//! update is a dozen passes over the parameter, its gradient and its
//! moments, each into a fresh tensor: for the tutorial UNet's 4.8 M
//! parameters that is a few hundred megabytes of memory traffic per
//! training step. This computes the same float32 operations, in the same
//! order and with the same rounded constants, reading each input once and
//! writing each result once, in parallel over blocks of the parameter.

use candle_core::{CpuStorage, Storage, Tensor};
use rayon::prelude::*;

use crate::Result;

/// Elements per parallel block.
const BLOCK: usize = 1 << 15;

/// Adam's constants for one step, as candle's scalar ops round them to
/// float32 (`Tensor * f64` multiplies by the constant rounded to f32).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamStep {
    pub(crate) b1: f64,
    pub(crate) b2: f64,
    pub(crate) eps: f64,
    /// `1 − β₁ᵗ`.
    pub(crate) bc1: f64,
    /// `1 − β₂ᵗ`.
    pub(crate) bc2: f64,
    pub(crate) lr: f64,
    pub(crate) amsgrad: bool,
}

impl AdamStep {
    /// Step `t` (from 1) with learning rate `lr`.
    pub(crate) fn new(lr: f64, (b1, b2): (f64, f64), eps: f64, amsgrad: bool, t: i32) -> Self {
        AdamStep {
            b1,
            b2,
            eps,
            bc1: 1.0 - b1.powi(t),
            bc2: 1.0 - b2.powi(t),
            lr,
            amsgrad,
        }
    }
}

/// A parameter after one step, with its new first and second moments and
/// AMSGrad's maximum.
pub(crate) type Stepped = (Tensor, Tensor, Tensor, Option<Tensor>);

/// The new `(p, m, v, vmax)` (`vmax` only with AMSGrad), or `None` where
/// the fused pass does not apply (not float32 on the CPU, not
/// contiguous, or state missing from an earlier step), and the caller
/// uses candle's ops.
pub(crate) fn adam_step(
    p: &Tensor,
    g: &Tensor,
    m: Option<&Tensor>,
    v: Option<&Tensor>,
    vmax: Option<&Tensor>,
    k: AdamStep,
) -> Result<Option<Stepped>> {
    // The first step starts from zero moments; a later one needs them all.
    let first = m.is_none();
    if !first && (v.is_none() || (k.amsgrad && vmax.is_none())) {
        return Ok(None);
    }
    let ins: Vec<&Tensor> = [Some(p), Some(g), m, v, vmax.filter(|_| k.amsgrad)]
        .into_iter()
        .flatten()
        .collect();
    let n = p.elem_count();
    let consts = Consts::new(&k);
    let outs = with_cpu_f32(&ins, n, |data| {
        par_blocks(n, if k.amsgrad { 4 } else { 3 }, |at, outs| {
            let len = outs[0].len();
            let input = |j: usize| &data[j][at..at + len];
            let ins = Inputs {
                p: input(0),
                g: input(1),
                mv: (!first).then(|| (input(2), input(3))),
                w: (k.amsgrad && !first).then(|| input(4)),
            };
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F, the only feature the
                // function is compiled for (checked just above).
                #[allow(unsafe_code)]
                unsafe {
                    block_avx512(&consts, &ins, outs)
                };
                return;
            }
            block(&consts, &ins, outs);
        })
    });
    let Some(outs) = outs else {
        return Ok(None);
    };
    let mut t = tensors_like(outs, p)?.into_iter();
    let (Some(pn), Some(mn), Some(vn)) = (t.next(), t.next(), t.next()) else {
        return Ok(None);
    };
    Ok(Some((pn, mn, vn, t.next())))
}

/// `outs` as tensors of `like`'s shape on its device.
pub(crate) fn tensors_like(outs: Vec<Vec<f32>>, like: &Tensor) -> Result<Vec<Tensor>> {
    let (shape, dev) = (like.shape(), like.device());
    Ok(outs
        .into_iter()
        .map(|v| Tensor::from_vec(v, shape.clone(), dev))
        .collect::<candle_core::Result<_>>()?)
}

/// Runs `f` over the data of `ts` when every one is a contiguous float32
/// CPU tensor of `n` elements; `None` (and `f` not run) otherwise.
pub(crate) fn with_cpu_f32<R>(
    ts: &[&Tensor],
    n: usize,
    f: impl FnOnce(&[&[f32]]) -> R,
) -> Option<R> {
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut data = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        match (&**storage, layout.contiguous_offsets()) {
            (Storage::Cpu(CpuStorage::F32(d)), Some((a, b))) if b - a == n => data.push(&d[a..b]),
            _ => return None,
        }
    }
    Some(f(&data))
}

/// `outs` vectors of `n` floats filled block by block on the rayon pool:
/// `fill(at, blocks)` gets, for the block starting at element `at`, one
/// slice of each output (blocks of [`BLOCK`] elements, the last shorter).
pub(crate) fn par_blocks(
    n: usize,
    outs: usize,
    fill: impl Fn(usize, Vec<&mut [f32]>) + Sync,
) -> Vec<Vec<f32>> {
    let mut vs: Vec<Vec<f32>> = (0..outs).map(|_| vec![0f32; n]).collect();
    let mut blocks: Vec<_> = vs.iter_mut().map(|o| o.chunks_mut(BLOCK)).collect();
    let mut tasks = Vec::with_capacity(n.div_ceil(BLOCK));
    for i in 0..n.div_ceil(BLOCK) {
        let outs: Vec<&mut [f32]> = blocks.iter_mut().filter_map(|b| b.next()).collect();
        tasks.push((i * BLOCK, outs));
    }
    tasks.into_par_iter().for_each(|(at, outs)| fill(at, outs));
    vs
}

/// Adam's constants rounded to float32, as candle's scalar ops round them.
struct Consts {
    b1: f32,
    b1c: f32,
    b2: f32,
    b2c: f32,
    inv_sqrt_bc2: f32,
    eps: f32,
    step: f32,
}

impl Consts {
    fn new(k: &AdamStep) -> Self {
        let c = |x: f64| x as f32;
        Consts {
            b1: c(k.b1),
            b1c: c(1.0 - k.b1),
            b2: c(k.b2),
            b2c: c(1.0 - k.b2),
            // candle's `t / c` multiplies by `1 / c`.
            inv_sqrt_bc2: c(1.0 / k.bc2.sqrt()),
            eps: c(k.eps),
            step: c(k.lr / k.bc1),
        }
    }
}

/// One block's inputs: parameter, gradient, the previous moments (none on
/// the first step) and AMSGrad's previous maximum.
struct Inputs<'a> {
    p: &'a [f32],
    g: &'a [f32],
    mv: Option<(&'a [f32], &'a [f32])>,
    w: Option<&'a [f32]>,
}

/// [`block`] compiled for AVX-512 (16 lanes; square roots and divisions are
/// exactly rounded in every width, so the results are the same).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn block_avx512(k: &Consts, ins: &Inputs<'_>, outs: Vec<&mut [f32]>) {
    block(k, ins, outs)
}

/// The update of one block into `outs` (`p, m, v` and, with AMSGrad,
/// the maximum), written as zipped iterators so that it vectorises.
#[inline(always)]
fn block(k: &Consts, ins: &Inputs<'_>, outs: Vec<&mut [f32]>) {
    // candle's `t * c` and `t + c` are `t·c + 0` and `t·1 + c` in f32 (its
    // affine op); the `+ 0.0`s are kept so that even the sign of a zero
    // comes out as candle's.
    let affine = |x: f32, mul: f32, add: f32| x * mul + add;
    let update = |p: f32, m: f32, second: f32| {
        let denom = affine(affine(second.sqrt(), k.inv_sqrt_bc2, 0.0), 1.0, k.eps);
        p - affine(m / denom, k.step, 0.0)
    };
    // m = β₁·m + (1 − β₁)·g, v = β₂·v + (1 − β₂)·g² (from zero moments on
    // the first step).
    let moments = |g: f32, m: f32, v: f32| {
        (
            affine(m, k.b1, 0.0) + affine(g, k.b1c, 0.0),
            affine(v, k.b2, 0.0) + affine(g * g, k.b2c, 0.0),
        )
    };
    let mut outs = outs.into_iter();
    let (Some(po), Some(mo), Some(vo)) = (outs.next(), outs.next(), outs.next()) else {
        return;
    };
    let wo = outs.next();
    let firsts = (ins.p.iter().zip(ins.g)).zip(po.iter_mut().zip(mo.iter_mut()).zip(vo.iter_mut()));
    match (ins.mv, ins.w, wo) {
        (None, _, wo) => {
            for ((&p, &g), ((po, mo), vo)) in firsts {
                let (m, v) = (affine(g, k.b1c, 0.0), affine(g * g, k.b2c, 0.0));
                (*po, *mo, *vo) = (update(p, m, v), m, v);
            }
            // AMSGrad's maximum starts as v.
            if let Some(wo) = wo {
                wo.copy_from_slice(vo);
            }
        }
        (Some((m, v)), Some(w), Some(wo)) => {
            let prev = m.iter().zip(v).zip(w.iter().zip(wo.iter_mut()));
            for (((&p, &g), ((po, mo), vo)), ((&m, &v), (&w, wo))) in firsts.zip(prev) {
                let (m, v) = moments(g, m, v);
                // AMSGrad's running maximum, as candle's `maximum`.
                let w = if w < v { v } else { w };
                (*po, *mo, *vo, *wo) = (update(p, m, w), m, v, w);
            }
        }
        (Some((m, v)), _, _) => {
            for (((&p, &g), ((po, mo), vo)), (&m, &v)) in firsts.zip(m.iter().zip(v)) {
                let (m, v) = moments(g, m, v);
                (*po, *mo, *vo) = (update(p, m, v), m, v);
            }
        }
    }
}
