//! CPU kernels of the 3-D convolution family: a tiled, channels-last
//! vol2col feeding `gemm`, for the forward pass, the gradient with respect
//! to the input (which is also the transposed convolution's forward pass)
//! and the gradient with respect to the weights.
//!
//! Every kernel works on one sample of a contiguous `(C, D, H, W)` tensor.
//! The column matrix of a tile holds one row per (input channel, kernel
//! tap) and one column per output voxel: filling a row is a strided copy of
//! input lines, which runs at memory speed, and `gemm` (which packs its
//! operands anyway) is handed the voxels as the long dimension of the
//! product. Tiles bound the column matrix to 16 MiB, so memory stays a small
//! multiple of the activations whatever the layer.

use super::Math;
use super::direct;
use super::gemm::{MatRef, sgemm};
use super::geom::ConvGeom;
use rayon::prelude::*;
use std::sync::OnceLock;

/// Which kernel family runs a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// Column tiles fed to `gemm` (any geometry, any CPU).
    Columns,
    /// The register-blocked direct kernels of `direct/` (stride 1,
    /// AVX-512).
    Direct,
}

/// The family for a convolution producing `dout` (any geometry) from
/// `sources` channels in `math`: direct when its rows are long enough to
/// fill vectors, on CPUs with AVX-512, or whenever the direct kernels run
/// it on AMX tiles (whose rows of 16 positions waste no more on short
/// rows than on any others). `LIVERSEG_CONV_KERNEL=columns` forces the
/// column kernels (for benchmarks and comparisons).
pub(crate) fn family(dout: [usize; 3], math: Math, sources: usize) -> Family {
    static FORCE_COLUMNS: OnceLock<bool> = OnceLock::new();
    let force = *FORCE_COLUMNS
        .get_or_init(|| std::env::var("LIVERSEG_CONV_KERNEL").is_ok_and(|v| v == "columns"));
    let long_rows = dout[2] >= 8 || direct::Kernel::pick(math, sources) == direct::Kernel::Amx;
    if !force && long_rows && direct::available() {
        Family::Direct
    } else {
        Family::Columns
    }
}

/// Upper bound on the elements of one column tile (16 MiB of f32).
const TILE_ELEMS: usize = 1 << 22;

fn tile_rows(total: usize, k: usize) -> usize {
    (TILE_ELEMS / k.max(1)).clamp(64, total.max(64))
}

/// Walks `0..total` in tiles of at most [`tile_rows`] positions, calling
/// `step(start, rows, buf)` with one reused buffer of `k · rows` floats.
fn for_each_tile(total: usize, k: usize, mut step: impl FnMut(usize, usize, &mut [f32])) {
    let tile = tile_rows(total, k);
    let mut buf = vec![0.0f32; tile * k];
    let mut start = 0;
    while start < total {
        let rows = tile.min(total - start);
        step(start, rows, &mut buf[..rows * k]);
        start += rows;
    }
}

/// `(d, h, w)` of linear index `p` in a volume of extent `dims` (w fastest).
#[inline]
fn unravel(p: usize, dims: [usize; 3]) -> [usize; 3] {
    let w = p % dims[2];
    let h = (p / dims[2]) % dims[1];
    let d = p / (dims[2] * dims[1]);
    [d, h, w]
}

/// The kernel tap `(td, th, tw)` of flat tap index `t`.
#[inline]
fn tap(t: usize, k: [usize; 3]) -> [usize; 3] {
    [t / (k[1] * k[2]), (t / k[2]) % k[1], t % k[2]]
}

/// Runs `f(line_start, d, h, w0, len)` over the runs of consecutive `w`
/// that the linear range `p0..p0 + rows` of a `dims` volume splits into
/// (`line_start` is the offset of the run inside the range).
#[inline]
fn for_each_line(
    p0: usize,
    rows: usize,
    dims: [usize; 3],
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    let mut p = p0;
    while p < p0 + rows {
        let [d, h, w] = unravel(p, dims);
        let len = (dims[2] - w).min(p0 + rows - p);
        f(p - p0, d, h, w, len);
        p += len;
    }
}

/// Fills the column tile `cols` (`cin · taps` rows of `rows` values, row
/// `ci · taps + t` holding what tap `t` of input channel `ci` sees for
/// output voxels `p0..p0 + rows`; 0 in the padding). Rows are filled in
/// parallel, each as runs along `w` that are plain strided copies.
fn fill_forward_cols(
    cols: &mut [f32],
    x: &[f32],
    din: [usize; 3],
    dout: [usize; 3],
    g: &ConvGeom,
    p0: usize,
    rows: usize,
) {
    let taps = g.taps();
    let plane = din[1] * din[2];
    let vol = din[0] * plane;
    cols.par_chunks_mut(rows).enumerate().for_each(|(kk, row)| {
        let (ci, t) = (kk / taps, kk % taps);
        let t = tap(t, g.kernel);
        let src = &x[ci * vol..(ci + 1) * vol];
        let off = |a: usize| (t[a] * g.dilation[a]) as isize - g.padding[a] as isize;
        let (od, oh, ow) = (off(0), off(1), off(2));
        let s2 = g.stride[2] as isize;
        for_each_line(p0, rows, dout, |at, d, h, w0, len| {
            let out = &mut row[at..at + len];
            let id = d as isize * g.stride[0] as isize + od;
            let ih = h as isize * g.stride[1] as isize + oh;
            if id < 0 || id >= din[0] as isize || ih < 0 || ih >= din[1] as isize {
                out.fill(0.0);
                return;
            }
            let line = &src[id as usize * plane + ih as usize * din[2]..][..din[2]];
            let iw0 = w0 as isize * s2 + ow;
            if s2 == 1 {
                // Stride 1: zeros where the tap falls in the padding, one
                // contiguous copy in between.
                let n = out.len() as isize;
                let lo = (-iw0).clamp(0, n);
                let hi = (din[2] as isize - iw0).clamp(lo, n);
                out[..lo as usize].fill(0.0);
                out[lo as usize..hi as usize]
                    .copy_from_slice(&line[(iw0 + lo) as usize..(iw0 + hi) as usize]);
                out[hi as usize..].fill(0.0);
                return;
            }
            for (j, o) in out.iter_mut().enumerate() {
                let iw = iw0 + j as isize * s2;
                *o = if iw >= 0 && (iw as usize) < din[2] {
                    line[iw as usize]
                } else {
                    0.0
                };
            }
        });
    });
}

/// Fills the transposed column tile (`cout · taps` rows of `rows` values
/// over *input* voxels `q0..q0 + rows`): row `co · taps + t` holds the
/// output-gradient value that reaches each input voxel through tap `t`, or
/// 0 when none does. The transpose of [`fill_forward_cols`].
fn fill_transposed_cols(
    cols: &mut [f32],
    gy: &[f32],
    din: [usize; 3],
    dout: [usize; 3],
    g: &ConvGeom,
    q0: usize,
    rows: usize,
) {
    let taps = g.taps();
    let plane = dout[1] * dout[2];
    let vol = dout[0] * plane;
    cols.par_chunks_mut(rows).enumerate().for_each(|(kk, row)| {
        let (co, t) = (kk / taps, kk % taps);
        let t = tap(t, g.kernel);
        let src = &gy[co * vol..(co + 1) * vol];
        // Output coordinate reaching input coordinate q along axis a, if any.
        let source = |a: usize, q: usize| -> Option<usize> {
            let num = (q + g.padding[a]) as isize - (t[a] * g.dilation[a]) as isize;
            let s = g.stride[a] as isize;
            (num >= 0 && num % s == 0 && ((num / s) as usize) < dout[a])
                .then_some((num / s) as usize)
        };
        for_each_line(q0, rows, din, |at, d, h, w0, len| {
            let out = &mut row[at..at + len];
            let (Some(od), Some(oh)) = (source(0, d), source(1, h)) else {
                out.fill(0.0);
                return;
            };
            let line = &src[od * plane + oh * dout[2]..][..dout[2]];
            for (j, o) in out.iter_mut().enumerate() {
                *o = match source(2, w0 + j) {
                    Some(ow) => line[ow],
                    None => 0.0,
                };
            }
        });
    });
}

/// Kernel extents above 16 taps per axis are rejected up front by the
/// layers: nothing in segmentation uses them, and a column tile must hold
/// at least one tap row per channel.
pub(crate) const MAX_KERNEL: usize = 16;

/// Forward convolution of one sample: `y (cout × P) = W (cout × K) ⋆ x`.
/// `w` is PyTorch's `(cout, cin, kd, kh, kw)` layout, contiguous.
// The operands are plain slices with their shapes beside them; bundling
// them would only move the same eight names into a struct.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_forward(
    x: &[f32],
    cin: usize,
    din: [usize; 3],
    w: &[f32],
    bias: Option<&[f32]>,
    cout: usize,
    g: &ConvGeom,
    dout: [usize; 3],
    y: &mut [f32],
    math: Math,
) {
    let math = direct::worth_bf16(math, cin, dout.iter().product(), cout * cin * g.taps());
    if family(dout, math, cin) == Family::Direct {
        direct::conv_forward(x, cin, din, w, bias, cout, g, dout, y, math);
    } else {
        columns_forward(x, cin, din, w, cout, g, dout, y);
        add_bias(y, bias, dout.iter().product());
    }
}

/// Adds `bias[c]` to every value of plane `c` of `y`.
fn add_bias(y: &mut [f32], bias: Option<&[f32]>, plane: usize) {
    if let Some(b) = bias {
        y[..b.len() * plane]
            .par_chunks_mut(plane.max(1))
            .zip(b)
            .for_each(|(p, b)| p.iter_mut().for_each(|v| *v += b));
    }
}

/// [`conv_forward`] through column tiles and `gemm`.
#[allow(clippy::too_many_arguments)]
fn columns_forward(
    x: &[f32],
    cin: usize,
    din: [usize; 3],
    w: &[f32],
    cout: usize,
    g: &ConvGeom,
    dout: [usize; 3],
    y: &mut [f32],
) {
    let k = cin * g.taps();
    let p_total: usize = dout.iter().product();
    for_each_tile(p_total, k, |p0, rows, cols| {
        fill_forward_cols(cols, x, din, dout, g, p0, rows);
        // y[co][p0 + r] = Σ_k W[co][k] · cols[k][r], written straight into
        // the (cout × P) output through its strides.
        let wt = MatRef::new(w, k, cout, 1, k);
        let ct = MatRef::new(cols, rows, k, 1, rows);
        sgemm(ct, wt, &mut y[p0..], 1, p_total, false, true);
    });
}

/// Gradient of a convolution with respect to its input, for one sample:
/// `gx (cin × Q) = Wᵀ ⋆ gy`. This is also the forward pass of the
/// transposed convolution whose weight is `w`.
// The operands are plain slices with their shapes beside them; bundling
// them would only move the same eight names into a struct.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward_input(
    gy: &[f32],
    cout: usize,
    dout: [usize; 3],
    w: &[f32],
    bias: Option<&[f32]>,
    cin: usize,
    g: &ConvGeom,
    din: [usize; 3],
    gx: &mut [f32],
    math: Math,
) {
    let math = direct::worth_bf16(math, cout, dout.iter().product(), cout * cin * g.taps());
    if family(dout, math, cout) == Family::Direct {
        direct::conv_backward_input(gy, cout, dout, w, bias, cin, g, din, gx, math);
    } else {
        columns_backward_input(gy, cout, dout, w, cin, g, din, gx);
        add_bias(gx, bias, din.iter().product());
    }
}

/// [`conv_backward_input`] through column tiles and `gemm`.
#[allow(clippy::too_many_arguments)]
fn columns_backward_input(
    gy: &[f32],
    cout: usize,
    dout: [usize; 3],
    w: &[f32],
    cin: usize,
    g: &ConvGeom,
    din: [usize; 3],
    gx: &mut [f32],
) {
    if g.stride.iter().any(|&s| s > 1) {
        // With a stride, most (tap, voxel) pairs of the gather below meet
        // no output voxel (7 in 8 for stride 2 in 3-D): scatter instead.
        conv_backward_input_scatter(gy, cout, dout, w, cin, g, din, gx);
        return;
    }
    let taps = g.taps();
    let kk = cout * taps;
    // wr[co·taps + t][ci] = w[co][ci][t]: the weight regrouped so that the
    // product contracts over (output channel, tap).
    let mut wr = vec![0.0f32; kk * cin];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..taps {
                wr[(co * taps + t) * cin + ci] = w[(co * cin + ci) * taps + t];
            }
        }
    }
    let q_total: usize = din.iter().product();
    for_each_tile(q_total, kk, |q0, rows, cols| {
        fill_transposed_cols(cols, gy, din, dout, g, q0, rows);
        let wm = MatRef::new(&wr, cin, kk, 1, cin);
        let cm = MatRef::new(cols, kk, rows, rows, 1);
        sgemm(wm, cm, &mut gx[q0..], q_total, 1, false, true);
    });
}

/// [`conv_backward_input`] for strided geometries, as a matrix product
/// followed by a scatter (col2vol): `C (cin·taps × P) = Wᵀ · gy`, then each
/// `C[ci·taps + t][o]` is added into `gx[ci]` at the input voxel that output
/// voxel `o` reads through tap `t`. Every product is one that contributes,
/// and input channels scatter into disjoint planes, in parallel.
#[allow(clippy::too_many_arguments)]
fn conv_backward_input_scatter(
    gy: &[f32],
    cout: usize,
    dout: [usize; 3],
    w: &[f32],
    cin: usize,
    g: &ConvGeom,
    din: [usize; 3],
    gx: &mut [f32],
) {
    let taps = g.taps();
    let rows_c = cin * taps;
    let p_total: usize = dout.iter().product();
    let q_total: usize = din.iter().product();
    gx[..cin * q_total].fill(0.0);
    for_each_tile(p_total, rows_c, |p0, rows, c| {
        // C[ci·taps + t][r] = Σ_co w[co][ci][t] · gy[co][p0 + r].
        let wm = MatRef::new(w, rows_c, cout, 1, rows_c);
        let gm = MatRef::new(&gy[p0..], cout, rows, p_total, 1);
        sgemm(wm, gm, c, rows, 1, false, true);
        let c = &*c;
        gx[..cin * q_total]
            .par_chunks_mut(q_total)
            .enumerate()
            .for_each(|(ci, plane)| {
                for t in 0..taps {
                    let tp = tap(t, g.kernel);
                    let row = &c[(ci * taps + t) * rows..(ci * taps + t + 1) * rows];
                    let off = |a: usize| (tp[a] * g.dilation[a]) as isize - g.padding[a] as isize;
                    let (od, oh, ow) = (off(0), off(1), off(2));
                    for_each_line(p0, rows, dout, |at, d, h, w0, len| {
                        let qd = d as isize * g.stride[0] as isize + od;
                        let qh = h as isize * g.stride[1] as isize + oh;
                        if qd < 0 || qd >= din[0] as isize || qh < 0 || qh >= din[1] as isize {
                            return;
                        }
                        let line =
                            &mut plane[(qd as usize * din[1] + qh as usize) * din[2]..][..din[2]];
                        let s2 = g.stride[2] as isize;
                        for (j, v) in row[at..at + len].iter().enumerate() {
                            let qw = (w0 + j) as isize * s2 + ow;
                            if qw >= 0 && (qw as usize) < din[2] {
                                line[qw as usize] += v;
                            }
                        }
                    });
                }
            });
    });
}

/// Gradient of a convolution with respect to its weight, for one sample,
/// accumulated into `gw` (PyTorch layout `(cout, cin, kd, kh, kw)`):
/// `gw += gy (cout × P) · cols (P × K)`.
// The operands are plain slices with their shapes beside them; bundling
// them would only move the same eight names into a struct.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward_weight(
    x: &[f32],
    cin: usize,
    din: [usize; 3],
    gy: &[f32],
    cout: usize,
    g: &ConvGeom,
    dout: [usize; 3],
    gw: &mut [f32],
    math: Math,
) {
    let math = direct::worth_bf16(math, cin, dout.iter().product(), cout * cin * g.taps());
    if family(dout, math, cin) == Family::Direct {
        direct::conv_backward_weight(x, cin, din, gy, cout, g, dout, gw, math);
    } else {
        columns_backward_weight(x, cin, din, gy, cout, g, dout, gw);
    }
}

/// [`conv_backward_weight`] through column tiles and `gemm`.
#[allow(clippy::too_many_arguments)]
fn columns_backward_weight(
    x: &[f32],
    cin: usize,
    din: [usize; 3],
    gy: &[f32],
    cout: usize,
    g: &ConvGeom,
    dout: [usize; 3],
    gw: &mut [f32],
) {
    let k = cin * g.taps();
    let p_total: usize = dout.iter().product();
    for_each_tile(p_total, k, |p0, rows, cols| {
        fill_forward_cols(cols, x, din, dout, g, p0, rows);
        let gm = MatRef::new(&gy[p0..], cout, rows, p_total, 1);
        let cm = MatRef::new(cols, rows, k, 1, rows);
        sgemm(gm, cm, gw, k, 1, true, true);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of a 3-D convolution, for checking the kernels.
    fn naive_conv(
        x: &[f32],
        cin: usize,
        din: [usize; 3],
        w: &[f32],
        cout: usize,
        g: &ConvGeom,
    ) -> (Vec<f32>, [usize; 3]) {
        let dout = g.conv_out(din).unwrap();
        let p: usize = dout.iter().product();
        let mut y = vec![0.0f32; cout * p];
        for co in 0..cout {
            for od in 0..dout[0] {
                for oh in 0..dout[1] {
                    for ow in 0..dout[2] {
                        let mut s = 0.0f64;
                        for ci in 0..cin {
                            for kd in 0..g.kernel[0] {
                                for kh in 0..g.kernel[1] {
                                    for kw in 0..g.kernel[2] {
                                        let i = [
                                            (od * g.stride[0] + kd * g.dilation[0]) as isize
                                                - g.padding[0] as isize,
                                            (oh * g.stride[1] + kh * g.dilation[1]) as isize
                                                - g.padding[1] as isize,
                                            (ow * g.stride[2] + kw * g.dilation[2]) as isize
                                                - g.padding[2] as isize,
                                        ];
                                        if (0..3).any(|a| i[a] < 0 || i[a] as usize >= din[a]) {
                                            continue;
                                        }
                                        let xi = ((ci * din[0] + i[0] as usize) * din[1]
                                            + i[1] as usize)
                                            * din[2]
                                            + i[2] as usize;
                                        let wi = (((co * cin + ci) * g.kernel[0] + kd)
                                            * g.kernel[1]
                                            + kh)
                                            * g.kernel[2]
                                            + kw;
                                        s += f64::from(x[xi]) * f64::from(w[wi]);
                                    }
                                }
                            }
                        }
                        y[((co * dout[0] + od) * dout[1] + oh) * dout[2] + ow] = s as f32;
                    }
                }
            }
        }
        (y, dout)
    }

    use crate::test_util::wave as data;

    /// The direct kernels against the definition and against the column
    /// kernels, on geometries with rows long enough for them: strides 1, 2
    /// and 3, dilation, asymmetric kernels and padding, odd extents, and
    /// channel counts that are not multiples of any register block.
    #[test]
    fn direct_kernels_match_the_definition_and_the_column_kernels() {
        if !direct::available() {
            // Loud, so that a run on such a CPU is not read as a pass.
            eprintln!(
                "SKIPPED: this CPU has no AVX-512F/FMA; the direct kernels are not tested (nor used) here"
            );
            return;
        }
        for (g, cin, cout, din) in [
            (ConvGeom::cubic(3, 1, 1, 1), 3, 5, [4, 5, 19]),
            (ConvGeom::cubic(3, 1, 1, 1), 2, 2, [3, 4, 33]),
            (ConvGeom::cubic(1, 1, 0, 1), 4, 9, [2, 3, 17]),
            (ConvGeom::cubic(3, 2, 1, 1), 3, 6, [7, 6, 33]),
            (ConvGeom::cubic(3, 2, 1, 1), 1, 16, [6, 8, 32]),
            (ConvGeom::cubic(2, 2, 0, 1), 2, 3, [4, 5, 34]),
            // Planes longer than one chunk of the kernel, and many
            // channel blocks; a strided one whose phases end unevenly.
            (ConvGeom::cubic(3, 1, 1, 1), 2, 19, [3, 30, 40]),
            (ConvGeom::cubic(3, 2, 1, 1), 3, 10, [5, 41, 35]),
            (
                ConvGeom {
                    kernel: [3, 2, 5],
                    stride: [2, 1, 3],
                    padding: [1, 0, 2],
                    dilation: [1, 2, 1],
                },
                2,
                3,
                [5, 7, 50],
            ),
            (
                ConvGeom {
                    kernel: [3, 1, 2],
                    stride: [1, 1, 1],
                    padding: [2, 0, 1],
                    dilation: [2, 1, 1],
                },
                3,
                4,
                [5, 4, 21],
            ),
        ] {
            let vol: usize = din.iter().product();
            let x = data(cin * vol, 0.5);
            let w = data(cout * cin * g.taps(), 1.5);
            let (want, dout) = naive_conv(&x, cin, din, &w, cout, &g);
            assert_eq!(family(dout, Math::F32, cin), Family::Direct, "{g:?}");
            let mut y = vec![f32::NAN; want.len()];
            // With a bias: the definition plus the bias of each channel.
            let bias: Vec<f32> = (0..cout).map(|c| c as f32 * 0.5 - 1.0).collect();
            direct::conv_forward(
                &x,
                cin,
                din,
                &w,
                Some(&bias),
                cout,
                &g,
                dout,
                &mut y,
                Math::F32,
            );
            let plane: usize = dout.iter().product();
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                let b = b + bias[i / plane];
                assert!((a - b).abs() < 1e-4, "{a} vs {b} for {g:?}");
            }
            let gy = data(want.len(), 3.0);
            let (mut gx_d, mut gx_c) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
            direct::conv_backward_input(
                &gy,
                cout,
                dout,
                &w,
                None,
                cin,
                &g,
                din,
                &mut gx_d,
                Math::F32,
            );
            columns_backward_input(&gy, cout, dout, &w, cin, &g, din, &mut gx_c);
            for (a, b) in gx_d.iter().zip(&gx_c) {
                assert!((a - b).abs() < 1e-4, "input gradient {a} vs {b} for {g:?}");
            }
            // As a transposed convolution with a bias on its cin outputs.
            let bias_t: Vec<f32> = (0..cin).map(|c| 0.25 + c as f32).collect();
            direct::conv_backward_input(
                &gy,
                cout,
                dout,
                &w,
                Some(&bias_t),
                cin,
                &g,
                din,
                &mut gx_d,
                Math::F32,
            );
            for (i, (a, b)) in gx_d.iter().zip(&gx_c).enumerate() {
                let b = b + bias_t[i / vol];
                assert!(
                    (a - b).abs() < 1e-4,
                    "transposed with bias {a} vs {b} for {g:?}"
                );
            }
            let (mut gw_d, mut gw_c) = (vec![0.25; w.len()], vec![0.25; w.len()]);
            direct::conv_backward_weight(&x, cin, din, &gy, cout, &g, dout, &mut gw_d, Math::F32);
            columns_backward_weight(&x, cin, din, &gy, cout, &g, dout, &mut gw_c);
            for (a, b) in gw_d.iter().zip(&gw_c) {
                assert!((a - b).abs() < 1e-3, "weight gradient {a} vs {b} for {g:?}");
            }
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        for g in [
            ConvGeom::cubic(3, 1, 1, 1),
            ConvGeom::cubic(3, 2, 1, 1),
            ConvGeom {
                kernel: [3, 1, 2],
                stride: [1, 2, 1],
                padding: [1, 0, 1],
                dilation: [2, 1, 1],
            },
        ] {
            let (cin, cout, din) = (3, 4, [5, 6, 7]);
            let x = data(cin * 210, 0.5);
            let w = data(cout * cin * g.taps(), 1.5);
            let (want, dout) = naive_conv(&x, cin, din, &w, cout, &g);
            let mut y = vec![f32::NAN; want.len()];
            conv_forward(&x, cin, din, &w, None, cout, &g, dout, &mut y, Math::F32);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b} for {g:?}");
            }
        }
    }

    /// ⟨conv(x), gy⟩ = ⟨x, convᵀ(gy)⟩ and = ⟨w, ∂w⟩: the backward kernels
    /// are the exact adjoints of the forward one.
    #[test]
    fn backward_kernels_are_adjoints() {
        for g in [
            ConvGeom::cubic(3, 2, 1, 1),
            ConvGeom {
                kernel: [2, 3, 1],
                stride: [2, 1, 3],
                padding: [0, 1, 0],
                dilation: [1, 2, 1],
            },
        ] {
            let (cin, cout, din) = (2, 3, [6, 5, 7]);
            let x = data(cin * 210, 0.1);
            let w = data(cout * cin * g.taps(), 2.0);
            let dout = g.conv_out(din).unwrap();
            let p: usize = dout.iter().product();
            let gy = data(cout * p, 7.0);
            let mut y = vec![0.0; cout * p];
            conv_forward(&x, cin, din, &w, None, cout, &g, dout, &mut y, Math::F32);
            let lhs: f64 = y
                .iter()
                .zip(&gy)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            let mut gx = vec![0.0; x.len()];
            conv_backward_input(&gy, cout, dout, &w, None, cin, &g, din, &mut gx, Math::F32);
            let rhs: f64 = x
                .iter()
                .zip(&gx)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{lhs} vs {rhs}"
            );
            let mut gw = vec![0.0; w.len()];
            conv_backward_weight(&x, cin, din, &gy, cout, &g, dout, &mut gw, Math::F32);
            let rhs_w: f64 = w
                .iter()
                .zip(&gw)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            assert!(
                (lhs - rhs_w).abs() < 1e-3 * lhs.abs().max(1.0),
                "{lhs} vs {rhs_w}"
            );
        }
    }
}
