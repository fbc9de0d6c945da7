//! A bounds-checked single-precision matrix product over the `gemm` crate.

/// A read-only matrix view: `m[r][c] = data[r * rs + c * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// The `rows × cols` view of `data` with row stride `rs` and column
    /// stride `cs`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// Largest linear index the view touches, or `None` for an empty view.
    fn max_index(&self) -> Option<usize> {
        if self.rows == 0 || self.cols == 0 {
            return None;
        }
        Some((self.rows - 1) * self.rs + (self.cols - 1) * self.cs)
    }
}

/// `c = a · b` (or `c += a · b` with `accumulate`), where `c` is an
/// `a.rows × b.cols` block with row stride `c_rs` and column stride `c_cs`
/// inside `c_data`. Panics (a programming error, not an input error) when a
/// view does not fit its buffer or the shapes disagree.
#[allow(unsafe_code)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c_data: &mut [f32],
    c_rs: usize,
    c_cs: usize,
    accumulate: bool,
    parallel: bool,
) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    let c_max = (m - 1) * c_rs + (n - 1) * c_cs;
    assert!(c_max < c_data.len(), "output view exceeds its buffer");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                for col in 0..n {
                    c_data[r * c_rs + col * c_cs] = 0.0;
                }
            }
        }
        return;
    }
    assert!(
        a.max_index().is_some_and(|i| i < a.data.len()),
        "lhs view exceeds its buffer"
    );
    assert!(
        b.max_index().is_some_and(|i| i < b.data.len()),
        "rhs view exceeds its buffer"
    );
    let par = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `gemm::gemm` reads `m·k` elements of `a` at offsets
    // `r·a.rs + c·a.cs`, `k·n` elements of `b` likewise, and reads/writes
    // `m·n` elements of `c` at `r·c_rs + col·c_cs`. The asserts above prove
    // that the largest of each set of offsets lies inside its slice (all
    // strides are non-negative, so the largest offset is the one at the last
    // row and column). `c_data` is a unique `&mut` borrow and `a`, `b` are
    // shared borrows, so the output cannot alias the inputs. With
    // `read_dst == false` gemm writes `c = beta·a·b` without reading `c`;
    // with `true`, `c = alpha·c + beta·a·b`; alpha = beta = 1.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c_data.as_mut_ptr(),
            c_cs as isize,
            c_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_product_with_strided_operands() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        // b stored transposed (n × k), viewed as k × n.
        let bt: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut c = vec![1.0f32; m * n];
        let am = MatRef {
            data: &a,
            rows: m,
            cols: k,
            rs: k,
            cs: 1,
        };
        let bm = MatRef {
            data: &bt,
            rows: k,
            cols: n,
            rs: 1,
            cs: k,
        };
        sgemm(am, bm, &mut c, n, 1, true, false);
        for r in 0..m {
            for col in 0..n {
                let want: f32 = 1.0 + (0..k).map(|i| a[r * k + i] * bt[col * k + i]).sum::<f32>();
                assert!((c[r * n + col] - want).abs() < 1e-5);
            }
        }
    }
}
