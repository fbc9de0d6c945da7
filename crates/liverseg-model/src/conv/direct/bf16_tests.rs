//! The bfloat16 kernels (AMX tiles and AVX-512 BF16 dot products) against
//! the float32 kernels, on operands that already are bfloat16: both sum
//! the same exact products, in different orders.

use super::amx::bf16_bits;
use super::lanes::{Kernel, dot_available};
use super::{amx, conv_backward_input, conv_backward_weight, conv_forward};
use crate::conv::{ConvGeom, Math};
use crate::test_util::wave as data;

fn rounded(v: &[f32]) -> Vec<f32> {
    v.iter()
        .map(|&x| f32::from_bits((bf16_bits(x) as u32) << 16))
        .collect()
}

/// `a` equals `b` (both sums of the same exact products, in different
/// orders) within float32 rounding of `scale`, the sum of the products'
/// magnitudes; and not all of `a` is zero.
fn close(a: &[f32], b: &[f32], scale: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    assert!(a.iter().any(|v| *v != 0.0), "{what}: all zero");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * scale, "{what} [{i}]: {x} vs {y}");
    }
}

/// Convolutions, transposed ones and weight gradients in `math` give the
/// float32 kernels' results on bfloat16 operands: source counts odd, under,
/// at and over one AMX tile's 32, destination counts under, at and over
/// one tile's 16 (and over two), strides 1 and 2, kernels 1 to 3, rows
/// shorter than a vector.
fn bf16_matches_f32(math: Math) {
    for (g, cin, cout, din) in [
        (ConvGeom::cubic(3, 1, 1, 1), 8, 16, [4, 5, 19]),
        (ConvGeom::cubic(3, 1, 1, 1), 16, 2, [3, 30, 40]),
        (ConvGeom::cubic(3, 1, 1, 1), 40, 20, [5, 6, 33]),
        (ConvGeom::cubic(3, 1, 1, 1), 33, 40, [3, 4, 17]),
        (ConvGeom::cubic(3, 2, 1, 1), 24, 48, [7, 6, 33]),
        (ConvGeom::cubic(2, 2, 0, 1), 16, 64, [4, 5, 34]),
        (ConvGeom::cubic(1, 1, 0, 1), 32, 3, [2, 3, 17]),
        (ConvGeom::cubic(3, 1, 1, 1), 3, 5, [4, 6, 21]),
        (ConvGeom::cubic(3, 2, 1, 1), 2, 9, [5, 7, 18]),
        // Rows shorter than a tile or a vector.
        (ConvGeom::cubic(3, 1, 1, 1), 64, 40, [4, 4, 4]),
        (ConvGeom::cubic(3, 2, 1, 1), 16, 8, [4, 5, 3]),
    ] {
        let vol: usize = din.iter().product();
        let x = rounded(&data(cin * vol, 0.5));
        let w = rounded(&data(cout * cin * g.taps(), 1.5));
        let dout = g.conv_out(din).expect("a valid geometry");
        let ys = cout * dout.iter().product::<usize>();
        // Every |x|, |w| ≤ 1: a sum of cin · taps products.
        let scale = (cin.max(cout) * g.taps()) as f32;
        let bias: Vec<f32> = (0..cout).map(|c| c as f32 * 0.5 - 1.0).collect();
        let what = format!("{math:?} {g:?} {cin}→{cout}");
        let run = |math| {
            let mut y = vec![f32::NAN; ys];
            conv_forward(&x, cin, din, &w, Some(&bias), cout, &g, dout, &mut y, math);
            y
        };
        close(&run(math), &run(Math::F32), scale, &what);
        let gy = rounded(&data(ys, 3.0));
        let back = |math| {
            let mut gx = vec![f32::NAN; x.len()];
            conv_backward_input(&gy, cout, dout, &w, None, cin, &g, din, &mut gx, math);
            gx
        };
        close(&back(math), &back(Math::F32), scale, &format!("{what} gx"));
        let weight = |math| {
            let mut gw = vec![0.25; w.len()];
            conv_backward_weight(&x, cin, din, &gy, cout, &g, dout, &mut gw, math);
            gw
        };
        let outs = dout.iter().product::<usize>() as f32;
        close(
            &weight(math),
            &weight(Math::F32),
            outs,
            &format!("{what} gw"),
        );
    }
}

#[test]
fn amx_kernels_match_the_float32_kernels_on_bfloat16_operands() {
    if !amx::available() {
        eprintln!("SKIPPED: this CPU or OS has no AMX-BF16; the AMX kernels are not tested here");
        return;
    }
    assert_eq!(Kernel::pick(Math::Bf16, 8), Kernel::Amx);
    bf16_matches_f32(Math::Bf16);
}

#[test]
fn dot_kernels_match_the_float32_kernels_on_bfloat16_operands() {
    if !dot_available() {
        eprintln!("SKIPPED: this CPU has no AVX-512 BF16; the dot kernels are not tested here");
        return;
    }
    assert!(matches!(Kernel::pick(Math::Bf16Dot, 2), Kernel::Dot(_)));
    assert_eq!(Kernel::pick(Math::Bf16Dot, 1), Kernel::F32);
    bf16_matches_f32(Math::Bf16Dot);
}

/// The dot kernels really round: on operands that are not bfloat16 they
/// differ from float32, by no more than bfloat16's rounding allows.
#[test]
fn dot_kernels_round_their_operands_to_bfloat16() {
    if !dot_available() {
        eprintln!("SKIPPED: this CPU has no AVX-512 BF16; the dot kernels are not tested here");
        return;
    }
    let (g, cin, cout, din) = (ConvGeom::cubic(3, 1, 1, 1), 6, 8, [3, 4, 20]);
    let vol: usize = din.iter().product();
    let (x, w) = (data(cin * vol, 0.25), data(cout * cin * g.taps(), 2.5));
    let dout = g.conv_out(din).expect("a valid geometry");
    let run = |math| {
        let mut y = vec![f32::NAN; cout * vol];
        conv_forward(&x, cin, din, &w, None, cout, &g, dout, &mut y, math);
        y
    };
    let (b, f) = (run(Math::Bf16Dot), run(Math::F32));
    let gap = b
        .iter()
        .zip(&f)
        .map(|(b, f)| (b - f).abs())
        .fold(0.0, f32::max);
    // Each operand's relative error is at most 2^-9; a sum of cin · taps
    // products of magnitudes ≤ 1.
    let bound = 2.0 * 2f32.powi(-9) * (cin * g.taps()) as f32;
    assert!(gap > 1e-4 && gap < bound, "gap {gap}, bound {bound}");
}

/// Small grids keep float32: on AMX below one output position per 100
/// weights, with the dot kernels below one per 10 000 (the plain U-Net's
/// 320→320 layers: 4³ stays float32, 8³ takes bfloat16).
#[test]
fn small_grids_keep_float32() {
    use super::worth_bf16;
    let (c, weights) = (320, 320 * 320 * 27);
    assert_eq!(worth_bf16(Math::F32, c, 1 << 20, 10), Math::F32);
    assert_eq!(worth_bf16(Math::Bf16Dot, c, 64, weights), Math::F32);
    let dot = if dot_available() {
        Math::Bf16Dot
    } else {
        Math::F32
    };
    assert_eq!(worth_bf16(Math::Bf16Dot, c, 512, weights), dot);
    // One source has no bfloat16 kernel, whatever the grid.
    assert_eq!(worth_bf16(Math::Bf16Dot, 1, 1 << 20, 27), Math::F32);
    if !amx::available() && !dot_available() {
        return;
    }
    let amx_cut = if amx::available() { 100 } else { 10_000 };
    let edge = weights.div_ceil(amx_cut);
    assert_eq!(worth_bf16(Math::Bf16, c, edge, weights), Math::Bf16);
    assert_eq!(worth_bf16(Math::Bf16, c, edge - 1, weights), Math::F32);
}
