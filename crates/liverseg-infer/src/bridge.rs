//! The bridge between volumes and tensors: a `liverseg_io::Volume` (x
//! fastest in memory) becomes the `(N, C, X, Y, Z)` tensor MONAI feeds its
//! network for the same file, and a channel of such a tensor becomes a
//! volume on a given grid.

use candle_core::{Device, Tensor};
use liverseg_io::Volume;
use liverseg_transforms::Grid;

use crate::{Error, Result};

/// Stacks volumes of one shape into a `(N, 1, X, Y, Z)` tensor, the axis
/// order MONAI's `LoadImage` gives the same file (a volume's `[i, j, k]` is
/// `tensor[n, 0, i, j, k]`).
pub fn volumes_to_tensor<T: liverseg_io::Voxel>(
    vols: &[&Volume<T>],
    device: &Device,
) -> Result<Tensor> {
    let samples: Vec<Vec<&Volume<T>>> = vols.iter().map(|v| vec![*v]).collect();
    channels_to_tensor(&samples, device)
}

/// Stacks samples of several channels (each sample's channels in order,
/// every volume of one shape) into a `(N, C, X, Y, Z)` tensor: channel `c`
/// of sample `n` is `tensor[n, c]`.
pub fn channels_to_tensor<T: liverseg_io::Voxel>(
    samples: &[Vec<&Volume<T>>],
    device: &Device,
) -> Result<Tensor> {
    let Some(first) = samples.first().and_then(|s| s.first()) else {
        return Err(Error::Config("an empty batch".into()));
    };
    let channels = samples[0].len();
    let [x, y, z] = first.dims();
    let mut data = Vec::with_capacity(samples.len() * channels * x * y * z);
    for s in samples {
        if s.len() != channels {
            return Err(Error::Grid(format!(
                "a batch mixes {} and {channels} channels",
                s.len()
            )));
        }
        for v in s {
            if v.dims() != [x, y, z] {
                return Err(Error::Grid(format!(
                    "a batch mixes shapes {:?} and {:?}",
                    first.dims(),
                    v.dims()
                )));
            }
            for i in 0..x {
                for j in 0..y {
                    for k in 0..z {
                        data.push(v.data()[i + x * (j + y * k)].to_f64() as f32);
                    }
                }
            }
        }
    }
    Ok(Tensor::from_vec(
        data,
        (samples.len(), channels, x, y, z),
        device,
    )?)
}

/// Channel `c` of sample `n` of a `(N, C, X, Y, Z)` tensor as a volume
/// placed on `grid`.
pub fn tensor_to_volume(t: &Tensor, n: usize, c: usize, grid: &Grid) -> Result<Volume<f32>> {
    let (_, _, x, y, z) = t.dims5()?;
    if [x, y, z] != grid.dims {
        return Err(Error::Grid(format!(
            "tensor spatial shape {:?} differs from the grid {:?}",
            [x, y, z],
            grid.dims
        )));
    }
    let flat: Vec<f32> = t
        .get(n)?
        .get(c)?
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let mut data = vec![0.0f32; flat.len()];
    for i in 0..x {
        for j in 0..y {
            for k in 0..z {
                data[i + x * (j + y * k)] = flat[(i * y + j) * z + k];
            }
        }
    }
    Ok(Volume::new(grid.dims, grid.affine, data)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_io::Affine;

    #[test]
    fn tensor_round_trip_keeps_ijk() {
        let v = Volume::new(
            [3, 2, 4],
            Affine::identity(),
            (0..24).map(|x| x as f32).collect(),
        )
        .unwrap();
        let t = volumes_to_tensor(&[&v, &v], &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 1, 3, 2, 4]);
        // tensor[0, 0, i, j, k] == volume[i, j, k]
        let val: f32 = t
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(2)
            .unwrap()
            .get(1)
            .unwrap()
            .get(3)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(val, v.get(2, 1, 3).unwrap());
        let back = tensor_to_volume(&t, 1, 0, &Grid::of(&v)).unwrap();
        assert_eq!(back.data(), v.data());
    }
}
