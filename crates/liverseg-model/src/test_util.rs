//! Helpers shared by the crate's unit tests (and, by path, its
//! integration tests: `tests/common/mod.rs`).

use candle_core::{Device, Tensor};

/// A deterministic pseudo-random tensor with values in about [-1.5, 2.5).
/// `n` values of a sine wave, `sin((i + seed) · 0.731)`, all in [-1, 1]:
/// deterministic test data for the convolution kernels.
pub(crate) fn wave(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + seed) * 0.731).sin()).collect()
}

pub(crate) fn seeded(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 1.5
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// `max |a − b|` over all elements; the shapes must agree.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Outputs and the gradients of `Σ f·r` for x, w and b (of shapes `xs`,
/// `ws`, `[nb]`), from two implementations of one layer: equal within
/// 1e-4 (outputs) and 1e-3 (gradients).
pub(crate) fn compare_with_gradients(
    xs: &[usize],
    ws: &[usize],
    nb: usize,
    one: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
    other: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
) {
    use candle_core::Var;
    let x = Var::from_tensor(&seeded(xs, 1)).unwrap();
    let w = Var::from_tensor(&seeded(ws, 2)).unwrap();
    let b = Var::from_tensor(&seeded(&[nb], 3)).unwrap();
    let run = |f: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor| {
        let y = f(x.as_tensor(), w.as_tensor(), b.as_tensor());
        let r = seeded(y.dims(), 4);
        let g = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
        let grads: Vec<Tensor> = [&x, &w, &b]
            .iter()
            .map(|v| g.get(v.as_tensor()).unwrap().clone())
            .collect();
        (y, grads)
    };
    let (y1, g1) = run(one);
    let (y2, g2) = run(other);
    assert_eq!(y1.dims(), y2.dims());
    assert!(max_diff(&y1, &y2) < 1e-4, "output {}", max_diff(&y1, &y2));
    for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
        assert!(max_diff(a, b) < 1e-3, "gradient {i}: {}", max_diff(a, b));
    }
}
