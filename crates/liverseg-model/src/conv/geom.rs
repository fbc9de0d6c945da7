//! Shape arithmetic of 3-D convolutions, as PyTorch defines it.

/// Kernel size, stride, zero padding and dilation along the three spatial
/// axes of a 3-D convolution (PyTorch's `Conv3d` arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Kernel extent per axis.
    pub kernel: [usize; 3],
    /// Stride per axis (≥ 1).
    pub stride: [usize; 3],
    /// Zero padding added on both sides per axis.
    pub padding: [usize; 3],
    /// Spacing between kernel taps per axis (≥ 1).
    pub dilation: [usize; 3],
}

impl ConvGeom {
    /// A cubic kernel with the same stride, padding and dilation on every axis.
    pub fn cubic(kernel: usize, stride: usize, padding: usize, dilation: usize) -> Self {
        ConvGeom {
            kernel: [kernel; 3],
            stride: [stride; 3],
            padding: [padding; 3],
            dilation: [dilation; 3],
        }
    }

    /// Number of kernel taps (`kd · kh · kw`).
    pub fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    /// True when every stride and dilation is at least 1 and every kernel
    /// extent at least 1.
    pub fn is_valid(&self) -> bool {
        (0..3).all(|a| self.kernel[a] >= 1 && self.stride[a] >= 1 && self.dilation[a] >= 1)
    }

    /// Output extent of a convolution over `input`:
    /// `⌊(in + 2p − d(k − 1) − 1) / s⌋ + 1`, or `None` when the kernel does
    /// not fit.
    pub fn conv_out(&self, input: [usize; 3]) -> Option<[usize; 3]> {
        let mut out = [0; 3];
        for a in 0..3 {
            let span = self.dilation[a] * (self.kernel[a] - 1) + 1;
            let padded = input[a] + 2 * self.padding[a];
            if padded < span {
                return None;
            }
            out[a] = (padded - span) / self.stride[a] + 1;
        }
        Some(out)
    }

    /// Output extent of a transposed convolution over `input`:
    /// `(in − 1)·s − 2p + d(k − 1) + output_padding + 1`, or `None` when it
    /// would be empty.
    pub fn conv_transpose_out(
        &self,
        input: [usize; 3],
        output_padding: [usize; 3],
    ) -> Option<[usize; 3]> {
        let mut out = [0; 3];
        for a in 0..3 {
            let full = (input[a].checked_sub(1)?) * self.stride[a]
                + self.dilation[a] * (self.kernel[a] - 1)
                + output_padding[a]
                + 1;
            out[a] = full.checked_sub(2 * self.padding[a]).filter(|&o| o > 0)?;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_pytorch() {
        // torch.nn.Conv3d(1, 1, 3, stride=2, padding=1)(torch.zeros(1, 1, 128, 128, 64)).shape
        // == (1, 1, 64, 64, 32)
        let g = ConvGeom::cubic(3, 2, 1, 1);
        assert_eq!(g.conv_out([128, 128, 64]), Some([64, 64, 32]));
        // ConvTranspose3d(k=3, s=2, p=1, output_padding=1) doubles: 64 -> 128.
        assert_eq!(
            g.conv_transpose_out([64, 64, 32], [1; 3]),
            Some([128, 128, 64])
        );
        // A 1x1x1 stride-1 conv keeps the size; dilation 2 with k=3 and p=0 shrinks by 4.
        assert_eq!(
            ConvGeom::cubic(1, 1, 0, 1).conv_out([5, 6, 7]),
            Some([5, 6, 7])
        );
        assert_eq!(
            ConvGeom::cubic(3, 1, 0, 2).conv_out([5, 6, 7]),
            Some([1, 2, 3])
        );
        assert_eq!(ConvGeom::cubic(3, 1, 0, 1).conv_out([2, 6, 7]), None);
    }
}
