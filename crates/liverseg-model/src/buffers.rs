//! Large output buffers filled on the rayon pool.
//!
//! `vec![0.0; n]` from an allocator that recycles memory (the binary's
//! mimalloc) is one `memset` on the calling thread: on a forward pass that
//! was a tenth of the time, with the other core idle. These build the same
//! vectors with every element written once, by the thread that computes
//! it, in parallel.
#![allow(unsafe_code)]

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Elements per task when a buffer has no natural chunk.
pub(crate) const GRAIN: usize = 1 << 16;

/// A vector of `n` elements, chunk `i` (of `chunk` elements; the last may
/// be shorter) first set to zero (`T::default()`) and then handed to
/// `fill(i, chunk)`, each chunk on the rayon pool by the thread that
/// zeroed it.
pub(crate) fn zeroed_chunks<T, F>(n: usize, chunk: usize, fill: F) -> Vec<T>
where
    T: Copy + Default + Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let mut v: Vec<T> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, part)| {
            part.fill(MaybeUninit::new(T::default()));
            // SAFETY: every element of `part` was initialised by the fill
            // just above, and `MaybeUninit<T>` has the size, alignment and
            // layout of `T`, so the same memory may be viewed as an
            // initialised `&mut [T]`; `part` is a unique borrow, so the new
            // slice is the only reference to it while it lives.
            let part = unsafe {
                std::slice::from_raw_parts_mut(part.as_mut_ptr().cast::<T>(), part.len())
            };
            fill(i, part);
        });
    // SAFETY: the chunks partition the first `n` elements of the spare
    // capacity (`n` ≤ capacity by `with_capacity`) and each was written
    // above; `for_each` returns only after every chunk is done (a panic in
    // `fill` unwinds before this line and the vector stays empty).
    unsafe { v.set_len(n) };
    v
}

/// `n` zeros, written in parallel.
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    zeroed_chunks(n, GRAIN, |_, _: &mut [f32]| {})
}

/// Writes one chunk of a buffer front to back, each element once.
pub(crate) struct Writer<'a, T> {
    out: &'a mut [MaybeUninit<T>],
    at: usize,
}

impl<T: Copy + Default> Writer<'_, T> {
    /// Appends `n` zeros (`T::default()`; fewer where the chunk ends
    /// first).
    pub(crate) fn zeros(&mut self, n: usize) {
        let end = (self.at + n).min(self.out.len());
        self.out[self.at..end].fill(MaybeUninit::new(T::default()));
        self.at = end;
    }

    /// Appends the values of `v` (cut where the chunk ends).
    pub(crate) fn extend(&mut self, v: impl IntoIterator<Item = T>) {
        let mut n = 0;
        for (slot, x) in self.out[self.at..].iter_mut().zip(v) {
            slot.write(x);
            n += 1;
        }
        self.at += n;
    }
}

/// A vector of `n` elements whose chunk `i` (of `chunk` elements; the last
/// may be shorter) is written front to back by `fill(i, writer)` on the
/// rayon pool, with no clearing pass first; whatever `fill` leaves
/// unwritten at the end of a chunk is zero.
pub(crate) fn written_chunks<T, F>(n: usize, chunk: usize, fill: F) -> Vec<T>
where
    T: Copy + Default + Send,
    F: Fn(usize, &mut Writer<'_, T>) + Sync,
{
    let mut v: Vec<T> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, part)| {
            let mut w = Writer { out: part, at: 0 };
            fill(i, &mut w);
            let rest = w.out.len() - w.at;
            w.zeros(rest);
        });
    // SAFETY: the chunks partition the first `n` elements of the spare
    // capacity (`n` ≤ capacity by `with_capacity`). A `Writer` only moves
    // `at` forward over elements it has just written, and after `fill`
    // the rest of the chunk, `at..len`, is written with zeros, so every
    // element is initialised once `for_each` returns.
    unsafe { v.set_len(n) };
    v
}

/// `x` mapped plane by plane (planes of `m` elements): plane `p` of the
/// result is the iterator `f(p, plane p of x)`, written straight into
/// fresh memory with no clearing pass. An iterator shorter than its plane
/// leaves zeros after its end.
pub(crate) fn map_planes<'a, I, F>(x: &'a [f32], m: usize, f: F) -> Vec<f32>
where
    I: Iterator<Item = f32>,
    F: Fn(usize, &'a [f32]) -> I + Sync,
{
    let n = x.len();
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(m.max(1))
        .zip(x.par_chunks(m.max(1)))
        .enumerate()
        .for_each(|(p, (out, plane))| {
            let written = out
                .iter_mut()
                .zip(f(p, plane))
                .map(|(slot, value)| {
                    slot.write(value);
                })
                .count();
            out[written..].fill(MaybeUninit::new(0.0));
        });
    // SAFETY: the chunks partition the first `n` elements of the spare
    // capacity (`n` ≤ capacity by `with_capacity`); in each, the first
    // `written` elements were written by the zip and the rest by the fill
    // after it, and `for_each` returns only once every chunk is done.
    unsafe { v.set_len(n) };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_zeroed_then_filled_in_place() {
        let v = zeroed_chunks(10, 4, |i, c: &mut [f32]| {
            assert!(c.iter().all(|&x| x == 0.0));
            c[0] = i as f32 + 1.0;
        });
        assert_eq!(v, [1., 0., 0., 0., 2., 0., 0., 0., 3., 0.]);
        assert_eq!(zeros(GRAIN * 2 + 3), vec![0.0; GRAIN * 2 + 3]);
        assert!(zeros(0).is_empty());
    }

    #[test]
    fn chunks_are_written_front_to_back_and_ended_with_zeros() {
        let v = written_chunks(11, 4, |i, w| {
            w.extend([i as f32 + 1.0]);
            w.zeros(1);
            w.extend([7.0, 8.0, 9.0]);
        });
        assert_eq!(v, [1., 0., 7., 8., 2., 0., 7., 8., 3., 0., 7.]);
        let v = written_chunks(5, 5, |_, w| w.extend([2.0f32]));
        assert_eq!(v, [2., 0., 0., 0., 0.]);
        let v = written_chunks(5, 3, |i, w| w.extend([i as u16 + 7]));
        assert_eq!(v, [7, 0, 0, 8, 0]);
        assert!(written_chunks(0, 3, |_, w: &mut Writer<'_, f32>| w.zeros(9)).is_empty());
    }

    #[test]
    fn planes_are_mapped_and_short_planes_padded_with_zeros() {
        let x: Vec<f32> = (0..7).map(|i| i as f32).collect();
        let y = map_planes(&x, 3, |p, xs| xs.iter().map(move |v| v * 10.0 + p as f32));
        assert_eq!(y, [0., 10., 20., 31., 41., 51., 62.]);
        let y = map_planes(&x, 3, |_, xs| xs.iter().copied().take(1));
        assert_eq!(y, [0., 0., 0., 3., 0., 0., 6.]);
    }
}
