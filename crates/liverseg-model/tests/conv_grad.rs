//! Gradients of the 3-D convolution layers against central finite
//! differences, through candle's autograd.

use candle_core::{DType, Device, Module, Tensor, Var};
use liverseg_model::{Conv3d, ConvGeom, ConvTranspose3d, ConvTranspose3dConfig};

fn seeded(shape: &[usize], seed: u64) -> Vec<f32> {
    // A small LCG: deterministic, no extra dependency.
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Checks d(sum(f(x) · r))/dθ for θ in {x, w, b} at a few coordinates.
fn check_grads(
    make: &dyn Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor>,
    xs: &[usize],
    ws: &[usize],
    nb: usize,
) {
    let dev = Device::Cpu;
    let x = Var::from_vec(seeded(xs, 1), xs, &dev).unwrap();
    let w = Var::from_vec(seeded(ws, 2), ws, &dev).unwrap();
    let b = Var::from_vec(seeded(&[nb], 3), nb, &dev).unwrap();
    let y = make(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
    let r = Tensor::from_vec(seeded(y.dims(), 4), y.dims(), &dev).unwrap();
    let loss = |x: &Tensor, w: &Tensor, b: &Tensor| -> f64 {
        let y = make(x, w, b).unwrap();
        let v: f32 = (y * &r).unwrap().sum_all().unwrap().to_scalar().unwrap();
        f64::from(v)
    };
    let grads = (make(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap() * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let eps = 1e-2f32;
    for (var, which) in [(&x, 0), (&w, 1), (&b, 2)] {
        let g: Vec<f32> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let n = base.len();
        for idx in [0, n / 3, n / 2, n - 1] {
            let mut plus = base.clone();
            plus[idx] += eps;
            let mut minus = base.clone();
            minus[idx] -= eps;
            let t = |v: Vec<f32>| Tensor::from_vec(v, var.as_tensor().dims(), &dev).unwrap();
            let (lp, lm) = match which {
                0 => (
                    loss(&t(plus), w.as_tensor(), b.as_tensor()),
                    loss(&t(minus), w.as_tensor(), b.as_tensor()),
                ),
                1 => (
                    loss(x.as_tensor(), &t(plus), b.as_tensor()),
                    loss(x.as_tensor(), &t(minus), b.as_tensor()),
                ),
                _ => (
                    loss(x.as_tensor(), w.as_tensor(), &t(plus)),
                    loss(x.as_tensor(), w.as_tensor(), &t(minus)),
                ),
            };
            let fd = (lp - lm) / (2.0 * f64::from(eps));
            let an = f64::from(g[idx]);
            assert!(
                (fd - an).abs() <= 2e-2 * fd.abs().max(1.0),
                "param {which} index {idx}: autograd {an} vs finite difference {fd}"
            );
        }
    }
}

#[test]
fn conv3d_gradients_match_finite_differences() {
    for geom in [
        ConvGeom::cubic(3, 1, 1, 1),
        ConvGeom::cubic(3, 2, 1, 1),
        ConvGeom {
            kernel: [1, 3, 2],
            stride: [1, 1, 2],
            padding: [0, 2, 1],
            dilation: [1, 2, 1],
        },
    ] {
        let make = move |x: &Tensor, w: &Tensor, b: &Tensor| {
            Conv3d::from_tensors(w.clone(), Some(b.clone()), geom)
                .unwrap()
                .forward(x)
        };
        let k = geom.kernel;
        check_grads(&make, &[2, 3, 5, 6, 4], &[4, 3, k[0], k[1], k[2]], 4);
    }
}

/// Rows of 10+ outputs: on CPUs with AVX-512 these run the direct kernels
/// (the cases above, with shorter rows, run the column kernels).
#[test]
fn conv3d_gradients_with_long_rows_match_finite_differences() {
    for (geom, w_in) in [
        (ConvGeom::cubic(3, 1, 1, 1), 10),
        (ConvGeom::cubic(3, 2, 1, 1), 19),
    ] {
        let make = move |x: &Tensor, w: &Tensor, b: &Tensor| {
            Conv3d::from_tensors(w.clone(), Some(b.clone()), geom)
                .unwrap()
                .forward(x)
        };
        check_grads(&make, &[1, 2, 3, 4, w_in], &[3, 2, 3, 3, 3], 3);
    }
    let cfg = ConvTranspose3dConfig {
        geom: ConvGeom::cubic(3, 2, 1, 1),
        output_padding: [1; 3],
        bias: true,
    };
    let make = move |x: &Tensor, w: &Tensor, b: &Tensor| {
        ConvTranspose3d::from_tensors(w.clone(), Some(b.clone()), cfg)
            .unwrap()
            .forward(x)
    };
    check_grads(&make, &[1, 3, 2, 3, 9], &[3, 2, 3, 3, 3], 2);
}

#[test]
fn conv_transpose3d_gradients_match_finite_differences() {
    let cfg = ConvTranspose3dConfig {
        geom: ConvGeom::cubic(3, 2, 1, 1),
        output_padding: [1; 3],
        bias: true,
    };
    let make = move |x: &Tensor, w: &Tensor, b: &Tensor| {
        ConvTranspose3d::from_tensors(w.clone(), Some(b.clone()), cfg)
            .unwrap()
            .forward(x)
    };
    check_grads(&make, &[2, 4, 3, 4, 2], &[4, 3, 3, 3, 3], 3);
}

#[test]
fn conv_transpose_doubles_the_grid() {
    let dev = Device::Cpu;
    let cfg = ConvTranspose3dConfig {
        geom: ConvGeom::cubic(3, 2, 1, 1),
        output_padding: [1; 3],
        bias: false,
    };
    let w = Tensor::ones((1, 1, 3, 3, 3), DType::F32, &dev).unwrap();
    let t = ConvTranspose3d::from_tensors(w, None, cfg).unwrap();
    let x = Tensor::ones((1, 1, 4, 4, 4), DType::F32, &dev).unwrap();
    let y = t.forward(&x).unwrap();
    assert_eq!(y.dims(), &[1, 1, 8, 8, 8]);
    // torch.nn.functional.conv_transpose3d(ones(1,1,4,4,4), ones(1,1,3,3,3), stride=2,
    // padding=1, output_padding=1): voxel (1,1,1) gathers taps from 2 inputs per axis -> 8;
    // voxel (2,2,2) lies on the input lattice and gathers 1 per axis -> 1.
    let v = |i: usize| {
        y.get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(i)
            .unwrap()
            .get(i)
            .unwrap()
            .get(i)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(v(1), 8.0);
    assert_eq!(v(2), 1.0);
}

/// A gradient nothing reads is not computed: with the input a plain
/// tensor (the network's input) only the weight and bias get gradients,
/// the same as when the input is a variable too; likewise with a frozen
/// weight, for the plain and the transposed convolution.
#[test]
fn gradients_of_untracked_operands_are_skipped() {
    let dev = Device::Cpu;
    let (xs, ws) = ([1, 2, 5, 6, 17], [3, 2, 3, 3, 3]);
    let g = ConvGeom::cubic(3, 2, 1, 1);
    for transposed in [false, true] {
        let ws = if transposed { [2, 3, 3, 3, 3] } else { ws };
        let make = |x: &Tensor, w: &Tensor| -> Tensor {
            let y = if transposed {
                let cfg = ConvTranspose3dConfig {
                    geom: g,
                    output_padding: [1, 1, 1],
                    bias: false,
                };
                ConvTranspose3d::from_tensors(w.clone(), None, cfg)
                    .unwrap()
                    .forward(x)
            } else {
                Conv3d::from_tensors(w.clone(), None, g).unwrap().forward(x)
            };
            y.unwrap().sqr().unwrap().sum_all().unwrap()
        };
        let xv = Var::from_vec(seeded(&xs, 1), &xs, &dev).unwrap();
        let wv = Var::from_vec(seeded(&ws, 2), &ws, &dev).unwrap();
        let both = make(xv.as_tensor(), wv.as_tensor()).backward().unwrap();
        let plain_x = Tensor::from_vec(seeded(&xs, 1), &xs, &dev).unwrap();
        let only_w = make(&plain_x, wv.as_tensor()).backward().unwrap();
        assert!(only_w.get(&plain_x).is_none(), "transposed {transposed}");
        let (a, b) = (
            only_w.get(wv.as_tensor()).unwrap(),
            both.get(wv.as_tensor()).unwrap(),
        );
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let frozen = Tensor::from_vec(seeded(&ws, 2), &ws, &dev).unwrap();
        let only_x = make(xv.as_tensor(), &frozen).backward().unwrap();
        assert!(only_x.get(&frozen).is_none());
        let (a, b) = (
            only_x.get(xv.as_tensor()).unwrap(),
            both.get(xv.as_tensor()).unwrap(),
        );
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}

/// Two convolutions of one geometry on one input, computed as one with
/// stacked outputs: the same outputs and gradients as two separate calls.
/// On grids the direct kernels take (rows of 8 or more) every output
/// channel's sum is computed as alone, so they agree bit for bit.
#[test]
fn conv_pair_equals_two_convolutions() {
    let dev = Device::Cpu;
    let geom = ConvGeom::cubic(3, 2, 1, 1);
    let xs = [2, 3, 12, 14, 20];
    let x = Var::from_vec(seeded(&xs, 11), &xs, &dev).unwrap();
    let conv = |cout: usize, seed: u64| {
        let ws = [cout, 3, 3, 3, 3];
        let w = Var::from_vec(seeded(&ws, seed), &ws, &dev).unwrap();
        let b = Var::from_vec(seeded(&[cout], seed + 1), cout, &dev).unwrap();
        let c =
            Conv3d::from_tensors(w.as_tensor().clone(), Some(b.as_tensor().clone()), geom).unwrap();
        (c, w, b)
    };
    let ((a, wa, ba), (b, wb, bb)) = (conv(5, 12), conv(9, 14));
    let (ya, yb) = a.forward_pair(&b, x.as_tensor()).unwrap();
    let (sa, sb) = (
        a.forward(x.as_tensor()).unwrap(),
        b.forward(x.as_tensor()).unwrap(),
    );
    assert_eq!(ya.dims(), sa.dims());
    assert_eq!(yb.dims(), sb.dims());
    let diff = |p: &Tensor, q: &Tensor| -> f32 {
        (p - q)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert_eq!(diff(&ya, &sa), 0.0);
    assert_eq!(diff(&yb, &sb), 0.0);
    // The same loss through both forms: the same gradients.
    let ra = Tensor::from_vec(seeded(sa.dims(), 20), sa.dims(), &dev).unwrap();
    let rb = Tensor::from_vec(seeded(sb.dims(), 21), sb.dims(), &dev).unwrap();
    let loss = |p: &Tensor, q: &Tensor| {
        ((p * &ra).unwrap().sum_all().unwrap() + (q * &rb).unwrap().sum_all().unwrap()).unwrap()
    };
    let g_pair = loss(&ya, &yb).backward().unwrap();
    let g_two = loss(&sa, &sb).backward().unwrap();
    for v in [&x, &wa, &ba, &wb, &bb] {
        let (p, q) = (
            g_pair.get(v.as_tensor()).unwrap(),
            g_two.get(v.as_tensor()).unwrap(),
        );
        let scale: f32 = q.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(
            diff(p, q) <= 1e-5 * scale,
            "gradient gap {} of {scale}",
            diff(p, q)
        );
    }
    // Different geometries fall back to two calls.
    let one =
        Conv3d::from_tensors(wa.as_tensor().clone(), None, ConvGeom::cubic(3, 1, 1, 1)).unwrap();
    let (p, q) = one.forward_pair(&b, x.as_tensor()).unwrap();
    assert_eq!(p.dims()[2..], [12, 14, 20]);
    assert_eq!(diff(&q, &sb), 0.0);
}
