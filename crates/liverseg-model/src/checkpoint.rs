//! Self-describing model files: safetensors weights with the architecture
//! in the file's metadata, and import of MONAI `state_dict` checkpoints.

use crate::unet::{UNet, UNetConfig};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Metadata key holding the architecture as JSON.
pub const ARCHITECTURE_KEY: &str = "liverseg.architecture";
/// Metadata key holding the preprocessing preset as JSON.
pub const PRESET_KEY: &str = "liverseg.preset";
/// Metadata key holding the class names as a JSON list (background first).
pub const LABELS_KEY: &str = "liverseg.labels";
/// Metadata key holding the file format version.
pub const FORMAT_KEY: &str = "liverseg.format";
/// The current file format version.
pub const FORMAT_VERSION: &str = "1";

/// The network a model file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    /// MONAI's `UNet` with this configuration.
    MonaiUnet(UNetConfig),
    /// nnU-Net's plain convolutional U-Net with this configuration.
    PlainUnet(crate::plain_unet::PlainUNetConfig),
}

impl Architecture {
    /// Checks the configuration as the network's constructor would (odd
    /// kernels, positive strides and channel counts, enough levels).
    pub fn validate(&self) -> Result<()> {
        match self {
            Architecture::MonaiUnet(c) => c.validate(),
            Architecture::PlainUnet(c) => c.validate(),
        }
    }

    /// The factor each input extent (x, y, z) must be divisible by.
    pub fn divisor(&self) -> [usize; 3] {
        match self {
            Architecture::MonaiUnet(c) => [c.divisor(); 3],
            Architecture::PlainUnet(c) => c.divisor(),
        }
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        match self {
            Architecture::MonaiUnet(c) => c.in_channels,
            Architecture::PlainUnet(c) => c.in_channels,
        }
    }

    /// Output channels (classes, background included).
    pub fn out_channels(&self) -> usize {
        match self {
            Architecture::MonaiUnet(c) => c.out_channels,
            Architecture::PlainUnet(c) => c.out_channels,
        }
    }

    /// Float32 values a forward pass keeps per input voxel, at most: every
    /// level's features at full resolution, twice (a layer's input and
    /// output), plus the input and the logits. An upper bound for checking
    /// a window against a memory budget before running it.
    pub fn activations_per_voxel(&self) -> u128 {
        let (widths, io) = match self {
            Architecture::MonaiUnet(c) => (&c.channels, c.in_channels + c.out_channels),
            Architecture::PlainUnet(c) => (&c.features, c.in_channels + c.out_channels),
        };
        let sum: u128 = widths.iter().map(|&w| w as u128).sum();
        sum.saturating_mul(2).saturating_add(io as u128)
    }

    /// Parameter names and shapes a network of this architecture has,
    /// found without allocating them: the network is built over a backend
    /// that records each shape and hands back a zero-stride view of one
    /// zero, so a file that claims a million channels costs nothing to
    /// refuse.
    pub fn parameter_shapes(&self) -> Result<BTreeMap<String, Vec<usize>>> {
        self.validate()?;
        let recorder = ShapeRecorder::default();
        let vb = VarBuilder::from_backend(Box::new(recorder.clone()), DType::F32, Device::Cpu);
        match self {
            Architecture::MonaiUnet(cfg) => {
                UNet::new(cfg, vb)?;
            }
            Architecture::PlainUnet(cfg) => {
                crate::plain_unet::PlainUNet::new(cfg, vb)?;
            }
        }
        let shapes = recorder
            .shapes
            .lock()
            .map_err(|_| Error::Config("shape recorder poisoned".into()))?
            .clone();
        Ok(shapes)
    }
}

/// A `VarBuilder` backend that records the shape of every parameter asked
/// for and returns a broadcast view of a single zero (no allocation).
#[derive(Clone, Default)]
struct ShapeRecorder {
    shapes: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<usize>>>>,
}

impl candle_nn::var_builder::SimpleBackend for ShapeRecorder {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut m) = self.shapes.lock() {
            m.insert(name.to_string(), s.dims().to_vec());
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: a shape recorder holds no tensors")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

fn file_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::File(format!("{}: {what}", path.display()))
}

/// The name and shape of every tensor in a safetensors file's header.
fn header_shapes(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Vec<usize>>> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| file_error(path, format!("not a safetensors file: {e}")))?;
    Ok(st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec()))
        .collect())
}

/// Checks that the tensors named in `shapes` are exactly the parameters of
/// `arch` with the right shapes; the error names the file, counts the
/// problems and lists the first few.
pub fn check_parameters(
    path: &Path,
    arch: &Architecture,
    shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<()> {
    let want = arch
        .parameter_shapes()
        .map_err(|e| file_error(path, format!("architecture metadata: {e}")))?;
    let mut problems = Vec::new();
    for (name, shape) in &want {
        match shapes.get(name) {
            None => problems.push(format!("missing {name}")),
            Some(t) if t != shape => problems.push(format!(
                "{name} has shape {t:?}, the architecture needs {shape:?}"
            )),
            Some(_) => {}
        }
    }
    for name in shapes.keys().filter(|n| !want.contains_key(*n)) {
        problems.push(format!("unexpected {name}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.sort();
        let n = problems.len();
        problems.truncate(3);
        Err(file_error(
            path,
            format!(
                "weights do not fit the architecture ({n} problems): {}",
                problems.join("; ")
            ),
        ))
    }
}

/// Writes weights and architecture to a safetensors file, atomically
/// (temporary file beside it, then rename). Refuses to replace an existing
/// file unless `overwrite`.
pub fn save(
    path: &Path,
    arch: &Architecture,
    tensors: &HashMap<String, Tensor>,
    overwrite: bool,
) -> Result<()> {
    save_with_metadata(path, arch, tensors, &BTreeMap::new(), overwrite)
}

/// [`save`] with extra metadata entries (a training run stores its
/// preprocessing preset under `liverseg.preset` and its classes under
/// `liverseg.labels`, so prediction can repeat them).
pub fn save_with_metadata(
    path: &Path,
    arch: &Architecture,
    tensors: &HashMap<String, Tensor>,
    extra: &BTreeMap<String, String>,
    overwrite: bool,
) -> Result<()> {
    save_as(path, arch, tensors, extra, overwrite, DType::F32)
}

/// [`save_with_metadata`] with the tensors stored as `dtype` (`F16` or
/// `BF16` halve a shipped model; [`ModelFile::load`] reads them back as
/// float32, the precision every layer computes in).
pub fn save_as(
    path: &Path,
    arch: &Architecture,
    tensors: &HashMap<String, Tensor>,
    extra: &BTreeMap<String, String>,
    overwrite: bool,
    dtype: DType,
) -> Result<()> {
    if !overwrite && path.exists() {
        return Err(file_error(path, "already exists"));
    }
    let mut meta: HashMap<String, String> =
        extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    meta.insert(FORMAT_KEY.to_string(), FORMAT_VERSION.to_string());
    meta.insert(
        ARCHITECTURE_KEY.to_string(),
        serde_json::to_string(arch).map_err(|e| Error::Config(e.to_string()))?,
    );
    let tensors: BTreeMap<&String, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k, v.to_dtype(dtype)?.contiguous()?)))
        .collect::<candle_core::Result<_>>()?;
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), Some(meta))
        .map_err(|e| file_error(path, format!("cannot serialise: {e}")))?;
    let bytes = canonical_header(&bytes).map_err(|e| file_error(path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::File::open(&tmp))
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| file_error(path, format!("cannot write: {e}")));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The safetensors file `bytes` with its JSON header's keys in sorted
/// order. safetensors writes the metadata map in hash order, which changes
/// from run to run; sorted, the same model is the same bytes (the built-in
/// model's recipe promises bit-identical weights). The data block is
/// unchanged: its offsets are relative to the end of the header.
fn canonical_header(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(
                    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect(),
                )
            }
            other => other,
        }
    }
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize)
        .ok_or("no safetensors header")?;
    let header = bytes.get(8..8 + n).ok_or("truncated safetensors header")?;
    let value: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| format!("bad safetensors header: {e}"))?;
    let mut json = serde_json::to_vec(&sorted(value)).map_err(|e| e.to_string())?;
    // safetensors pads its header with spaces to an 8-byte boundary.
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// A model file's architecture and weights.
#[derive(Debug)]
pub struct ModelFile {
    /// The network.
    pub architecture: Architecture,
    /// Its parameters by name.
    pub tensors: HashMap<String, Tensor>,
    /// Every metadata entry of the file (architecture, format, and what the
    /// writer added, such as `liverseg.preset`).
    pub metadata: HashMap<String, String>,
}

impl ModelFile {
    /// Reads a liverseg safetensors model file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        // A FIFO or device would block or never end: regular files only.
        let meta =
            std::fs::metadata(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(file_error(path, "not a regular file"));
        }
        let bytes =
            std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        Self::from_bytes(path, &bytes, device)
    }

    /// Reads a model file held in memory (a model embedded in a binary);
    /// `path` only names it in errors. Tensors stored in half precision
    /// are converted to float32.
    pub fn from_bytes(path: &Path, bytes: &[u8], device: &Device) -> Result<Self> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| file_error(path, format!("not a safetensors file: {e}")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let arch_json = meta.get(ARCHITECTURE_KEY).ok_or_else(|| {
            file_error(path, "has no liverseg architecture metadata; import MONAI weights with `liverseg import-monai`")
        })?;
        let architecture: Architecture = serde_json::from_str(arch_json)
            .map_err(|e| file_error(path, format!("bad architecture metadata: {e}")))?;
        // Shapes first, from the header: a file whose architecture does
        // not match its tensors is refused before any tensor is built.
        check_parameters(path, &architecture, &header_shapes(path, bytes)?)?;
        let tensors = candle_core::safetensors::load_buffer(bytes, device)
            .and_then(|t| {
                t.into_iter()
                    .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
                    .collect::<candle_core::Result<HashMap<_, _>>>()
            })
            .map_err(|e| file_error(path, format!("cannot read tensors: {e}")))?;
        Ok(ModelFile {
            architecture,
            tensors,
            metadata: meta,
        })
    }

    /// Builds the network with these weights, as a module giving the
    /// full-resolution logits.
    pub fn network(&self, device: &Device) -> Result<Box<dyn candle_core::ModuleT + Send + Sync>> {
        let vb = VarBuilder::from_tensors(self.tensors.clone(), DType::F32, device);
        Ok(match &self.architecture {
            Architecture::MonaiUnet(cfg) => Box::new(UNet::new(cfg, vb)?),
            Architecture::PlainUnet(cfg) => Box::new(crate::plain_unet::PlainUNet::new(cfg, vb)?),
        })
    }
}

/// Reads a MONAI checkpoint: a `state_dict` saved with `torch.save` (or a
/// dict holding one under `state_dict`/`model`), or a safetensors file of
/// the same names. `num_batches_tracked` counters are dropped; the names
/// and shapes must then be exactly those of `arch`.
pub fn import_monai(path: &Path, arch: &Architecture) -> Result<HashMap<String, Tensor>> {
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let list: Vec<(String, Tensor)> = if is_safetensors {
        candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| file_error(path, format!("cannot read: {e}")))?
            .into_iter()
            .collect()
    } else {
        let mut found = None;
        for key in [None, Some("state_dict"), Some("model")] {
            if let Ok(v) = candle_core::pickle::read_all_with_key(path, key)
                && !v.is_empty()
            {
                found = Some(v);
                break;
            }
        }
        found.ok_or_else(|| {
            file_error(
                path,
                "not a PyTorch state_dict (torch.save of model.state_dict())",
            )
        })?
    };
    let mut tensors = HashMap::new();
    for (name, t) in list {
        let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        tensors.insert(name, t.to_dtype(DType::F32)?);
    }
    let shapes = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    check_parameters(path, arch, &shapes)?;
    Ok(tensors)
}
