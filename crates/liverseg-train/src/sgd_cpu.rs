//! SGD's update of one float32 parameter on the CPU in a single pass.
//!
//! With candle's element-wise ops (`optim::sgd_update_composed`) an update
//! with weight decay and Nesterov momentum is eight passes over the
//! parameter, each into a fresh tensor; for nnU-Net's plain U-Net (31 M
//! parameters) that is gigabytes of memory traffic per step. This computes
//! the same float32 operations in the same order, reading each input once
//! and writing the parameter and the momentum buffer once, in parallel
//! over blocks.

use candle_core::Tensor;

use crate::Result;
use crate::adam_cpu::{par_blocks, tensors_like, with_cpu_f32};

/// One SGD step's settings (`torch.optim.SGD` with dampening 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SgdStep {
    pub(crate) lr: f64,
    pub(crate) momentum: f64,
    pub(crate) nesterov: bool,
    pub(crate) weight_decay: f64,
}

/// The new parameter and, with momentum, the new momentum buffer; `None`
/// where the fused pass does not apply (not float32 on the CPU, not
/// contiguous), and the caller uses candle's ops.
pub(crate) fn sgd_step(
    p: &Tensor,
    g: &Tensor,
    buf: Option<&Tensor>,
    k: SgdStep,
) -> Result<Option<(Tensor, Option<Tensor>)>> {
    let with_momentum = k.momentum != 0.0;
    let ins: Vec<&Tensor> = [Some(p), Some(g), buf.filter(|_| with_momentum)]
        .into_iter()
        .flatten()
        .collect();
    let n = p.elem_count();
    // candle's `t * c` is `t·c + 0` in f32 (its affine op); the `+ 0.0`s
    // are kept so that even the sign of a zero comes out as candle's.
    let (wd, m, lr) = (k.weight_decay as f32, k.momentum as f32, k.lr as f32);
    let decay = k.weight_decay != 0.0;
    let outs = with_cpu_f32(&ins, n, |data| {
        par_blocks(n, if with_momentum { 2 } else { 1 }, |at, mut outs| {
            let len = outs[0].len();
            let (p, g) = (&data[0][at..at + len], &data[1][at..at + len]);
            let prev = data.get(2).map(|b| &b[at..at + len]);
            let decayed = |i: usize| {
                if decay {
                    g[i] + (p[i] * wd + 0.0)
                } else {
                    g[i]
                }
            };
            let apply = |i: usize, d: f32| p[i] - (d * lr + 0.0);
            match outs.as_mut_slice() {
                [po, bo] => {
                    for i in 0..len {
                        let g = decayed(i);
                        let b = match prev {
                            Some(prev) => (prev[i] * m + 0.0) + g,
                            None => g,
                        };
                        bo[i] = b;
                        po[i] = apply(i, if k.nesterov { g + (b * m + 0.0) } else { b });
                    }
                }
                [po] => {
                    for (i, po) in po.iter_mut().enumerate() {
                        *po = apply(i, decayed(i));
                    }
                }
                _ => {}
            }
        })
    });
    let Some(outs) = outs else {
        return Ok(None);
    };
    let mut t = tensors_like(outs, p)?.into_iter();
    let Some(pn) = t.next() else {
        return Ok(None);
    };
    Ok(Some((pn, t.next())))
}
