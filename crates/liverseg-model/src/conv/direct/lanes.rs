//! What the register-blocked kernels multiply, one 512-bit vector at a
//! time: float32 with fused multiply-adds, or bfloat16 pairs with
//! AVX-512 BF16's `VDPBF16PS`, which adds the two products of each 32-bit
//! lane's pair to a float32 sum (Intel from Cooper Lake and Sapphire
//! Rapids, AMD from Zen 4). One dot instruction does the work of two
//! fused multiply-adds, so at the same instruction rate the bfloat16
//! kernels sum twice the products.
//!
//! Pairs are what the products sum over. In the forward kernels and the
//! input gradient that is two source channels at one grid position (the
//! sources laid out `[channel pair][position]`, the weights `[pair][tap]
//! [dest]`, a broadcast pair of weights against 16 positions); in the
//! weight gradient, two neighbouring grid positions of one channel (plain
//! bfloat16 planes, 32 positions per vector).

use super::Math;

/// Whether this CPU runs the bfloat16 dot kernels: AVX-512F, FMA and
/// AVX-512 BF16.
pub(crate) fn dot_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::available() && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Proof that this CPU runs the dot kernels: only [`DotCpu::detect`]
/// makes one, after [`dot_available`] said yes, so code holding one may
/// call them without checking again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DotCpu(());

impl DotCpu {
    /// The proof, where the CPU has AVX-512F, FMA and AVX-512 BF16.
    pub(crate) fn detect() -> Option<DotCpu> {
        dot_available().then_some(DotCpu(()))
    }
}

/// The kernel a run of `sources` channels takes in `math`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// float32 vectors and fused multiply-adds.
    F32,
    /// bfloat16 pairs and `VDPBF16PS`, on a CPU that has it.
    Dot(DotCpu),
    /// bfloat16 tiles and `TDPBF16PS` (`amx.rs`).
    Amx,
}

impl Kernel {
    /// AMX where bfloat16 is asked for, the CPU and OS allow AMX and the
    /// sources fill a tile's rows (8 or more); else the dot kernels for
    /// two sources or more where the CPU has AVX-512 BF16 (and always for
    /// [`Math::Bf16Dot`]); float32 otherwise. A CPU with AMX keeps float32
    /// for fewer than 8 sources, as it did before the dot kernels.
    pub(crate) fn pick(math: Math, sources: usize) -> Kernel {
        let amx = super::amx::available();
        match math {
            Math::F32 => Kernel::F32,
            Math::Bf16 if amx => {
                if sources >= 8 {
                    Kernel::Amx
                } else {
                    Kernel::F32
                }
            }
            Math::Bf16 | Math::Bf16Dot if sources >= 2 => {
                DotCpu::detect().map_or(Kernel::F32, Kernel::Dot)
            }
            Math::Bf16 | Math::Bf16Dot => Kernel::F32,
        }
    }
}

/// Two bfloat16 values in one 32-bit lane, `lo` in the low half.
pub(super) fn pair(lo: u16, hi: u16) -> u32 {
    lo as u32 | (hi as u32) << 16
}

#[cfg(target_arch = "x86_64")]
pub(super) use simd::*;

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// One kind of vector operand and its multiply-add into float32 sums.
    pub(in super::super) trait Lanes {
        /// One element in memory.
        type S: Copy + Send + Sync;
        /// Elements per vector.
        const PER: usize;
        /// The most terms a weight-gradient tile of 4 output channels
        /// holds (`weight.rs`). 7 needs 4 · 7 sums, 4 output-gradient
        /// vectors and an input vector: one register more than AVX-512's
        /// 32, so the compiler rotates a sum through the stack. That costs
        /// the float32 kernel little (with 4 terms it measured 11 % faster
        /// on one layer and 10 % slower on another), but the bfloat16 one
        /// ran 10–20 % slower than with tiles of 4 (`benches/layers.rs` on
        /// a Zen 4, 128³ and 64³ layers), so [`Positions`] keeps to 6.
        const WEIGHT_TERMS: usize = 7;
        /// `PER` elements from `p`.
        ///
        /// # Safety
        /// AVX-512F, and `PER` elements readable at `p`.
        unsafe fn load(p: *const Self::S) -> __m512;
        /// `acc + a · b`, lane by lane, summing the lane's products.
        ///
        /// # Safety
        /// The CPU features of the kind (AVX-512F and FMA, or AVX-512
        /// BF16).
        unsafe fn madd(a: __m512, b: __m512, acc: __m512) -> __m512;
    }

    /// A kind whose one element can be broadcast to every lane.
    pub(in super::super) trait Splat: Lanes {
        /// The element at `p` in every lane.
        ///
        /// # Safety
        /// AVX-512F, and the element readable at `p`.
        unsafe fn splat(p: *const Self::S) -> __m512;
    }

    /// 16 float32 values.
    pub(in super::super) struct F32;

    impl Lanes for F32 {
        type S = f32;
        const PER: usize = 16;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: the contract.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn madd(a: __m512, b: __m512, acc: __m512) -> __m512 {
            // SAFETY: the contract.
            unsafe { _mm512_fmadd_ps(a, b, acc) }
        }
    }

    impl Splat for F32 {
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> __m512 {
            // SAFETY: the contract.
            unsafe { _mm512_set1_ps(*p) }
        }
    }

    /// `acc + a.lo · b.lo + a.hi · b.hi` per 32-bit lane of bfloat16
    /// pairs.
    ///
    /// # Safety
    /// AVX-512 BF16 (and AVX-512F).
    #[inline(always)]
    unsafe fn dot(a: __m512, b: __m512, acc: __m512) -> __m512 {
        // SAFETY: `__m512` and `__m512bh` are both 64 plain bytes; the
        // reinterpretation changes no bit. The instruction is available
        // by the contract.
        unsafe {
            let (a, b) = (
                std::mem::transmute::<__m512, __m512bh>(a),
                std::mem::transmute::<__m512, __m512bh>(b),
            );
            _mm512_dpbf16_ps(acc, a, b)
        }
    }

    /// 16 pairs of bfloat16 channels, one grid position per lane.
    pub(in super::super) struct Pairs;

    impl Lanes for Pairs {
        type S = u32;
        const PER: usize = 16;
        #[inline(always)]
        unsafe fn load(p: *const u32) -> __m512 {
            // SAFETY: the contract; an unaligned load of 64 bytes.
            unsafe { _mm512_loadu_ps(p.cast()) }
        }
        #[inline(always)]
        unsafe fn madd(a: __m512, b: __m512, acc: __m512) -> __m512 {
            // SAFETY: the contract.
            unsafe { dot(a, b, acc) }
        }
    }

    impl Splat for Pairs {
        #[inline(always)]
        unsafe fn splat(p: *const u32) -> __m512 {
            // SAFETY: the contract.
            unsafe { _mm512_castsi512_ps(_mm512_set1_epi32(*p as i32)) }
        }
    }

    /// 32 bfloat16 values of one channel, neighbouring positions paired.
    pub(in super::super) struct Positions;

    impl Lanes for Positions {
        type S = u16;
        const PER: usize = 32;
        const WEIGHT_TERMS: usize = 6;
        #[inline(always)]
        unsafe fn load(p: *const u16) -> __m512 {
            // SAFETY: the contract; an unaligned load of 64 bytes.
            unsafe { _mm512_loadu_ps(p.cast()) }
        }
        #[inline(always)]
        unsafe fn madd(a: __m512, b: __m512, acc: __m512) -> __m512 {
            // SAFETY: the contract.
            unsafe { dot(a, b, acc) }
        }
    }
}
