//! ONNX export: a model file's network as an ONNX graph (opset 17, IR
//! version 8) with its weights as initialisers and its metadata (the
//! architecture, the preprocessing preset, the class names) in
//! `metadata_props`, for ONNX Runtime, TensorRT, OpenVINO or Triton.
//!
//! Each layer writes its own nodes ([`Emit`]), from the same tensors and the
//! same structure the candle network runs, so the graph cannot drift from
//! the network. Evaluation mode: batch norm uses its running statistics,
//! dropout is absent. The graph's input `image` is the preprocessed
//! `(N, C, X, Y, Z)` window; its outputs are `logits` and `probabilities`
//! (soft-max over channels).

mod proto;

use crate::checkpoint::{Architecture, ModelFile};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
pub(crate) use proto::Attr;
use proto::{Dim, Msg};
use std::collections::HashMap;

/// The operator set the exported graph uses.
pub const ONNX_OPSET: i64 = 17;
/// The IR version matching [`ONNX_OPSET`].
const IR_VERSION: i64 = 8;
/// Protocol Buffers cannot encode a message of 2 GiB or more.
const PROTOBUF_LIMIT: usize = (1 << 31) - 1;

/// A node before encoding (its output may still be renamed).
struct Node {
    name: String,
    op: &'static str,
    inputs: Vec<String>,
    output: String,
    attrs: Vec<(&'static str, Attr)>,
}

/// The graph being written: nodes in execution order, initialisers, and
/// the model file's parameter names, found by tensor identity.
pub(crate) struct Graph {
    nodes: Vec<Node>,
    initializers: Vec<Msg>,
    initializer_bytes: usize,
    param_names: HashMap<candle_core::TensorId, String>,
    taken: std::collections::HashSet<String>,
    counter: usize,
}

impl Graph {
    fn new(param_names: HashMap<candle_core::TensorId, String>) -> Self {
        Graph {
            nodes: Vec::new(),
            initializers: Vec::new(),
            initializer_bytes: 0,
            param_names,
            taken: Default::default(),
            counter: 0,
        }
    }

    fn fresh(&mut self, base: &str) -> String {
        loop {
            self.counter += 1;
            let name = format!("{base}_{}", self.counter);
            if self.taken.insert(name.clone()) {
                return name;
            }
        }
    }

    /// The model file's name for `t`, if it is one of the file's tensors.
    pub(crate) fn name_of(&self, t: &Tensor) -> Option<String> {
        self.param_names.get(&t.id()).cloned()
    }

    /// Adds `data` with shape `dims` as an initialiser named `name` (made
    /// unique) and returns the name.
    pub(crate) fn constant(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let name = if self.taken.insert(name.to_string()) {
            name.to_string()
        } else {
            self.fresh(name)
        };
        let t = proto::tensor(&name, dims, data);
        self.initializer_bytes += t.len();
        self.initializers.push(t);
        name
    }

    /// Adds a parameter tensor as an initialiser, under its model-file name
    /// (or `fallback`), reshaped to `dims` when given.
    pub(crate) fn param(
        &mut self,
        t: &Tensor,
        fallback: &str,
        dims: Option<&[usize]>,
    ) -> Result<String> {
        let name = self.name_of(t).unwrap_or_else(|| fallback.to_string());
        let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let shape = dims.map_or_else(|| t.dims().to_vec(), <[usize]>::to_vec);
        Ok(self.constant(&name, &shape, &data))
    }

    /// Adds a node with one output and returns the output's name.
    pub(crate) fn op(
        &mut self,
        op: &'static str,
        inputs: &[&str],
        attrs: Vec<(&'static str, Attr)>,
    ) -> String {
        let name = self.fresh(op);
        self.nodes.push(Node {
            name: name.clone(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            output: name.clone(),
            attrs,
        });
        name
    }

    /// Gives the value `from` the name `to` (a graph output's name).
    fn rename(&mut self, from: &str, to: &str) {
        for n in &mut self.nodes {
            if n.output == from {
                n.output = to.to_string();
            }
            for i in &mut n.inputs {
                if i == from {
                    *i = to.to_string();
                }
            }
        }
    }
}

/// A layer that writes itself into an ONNX graph: given the name of its
/// input value, it adds its nodes and returns the name of its output.
pub(crate) trait Emit {
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String>;
}

/// A 3-D convolution geometry's attributes (`pads` as begins then ends).
pub(crate) fn geometry_attrs(geom: &crate::ConvGeom) -> Vec<(&'static str, Attr)> {
    let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&x| x as i64).collect());
    let p = geom.padding;
    vec![
        ("kernel_shape", ints(&geom.kernel)),
        ("strides", ints(&geom.stride)),
        ("pads", ints(&[p, p].concat())),
        ("dilations", ints(&geom.dilation)),
    ]
}

/// Writes `file`'s network as an ONNX model (opset 17): the encoded
/// `ModelProto`. Fails when the weights exceed the 2 GiB a single
/// Protocol Buffers message can hold.
pub fn export_onnx(file: &ModelFile) -> Result<Vec<u8>> {
    let device = Device::Cpu;
    let tensors: HashMap<String, Tensor> = file
        .tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&device)?.to_dtype(DType::F32)?)))
        .collect::<Result<_>>()?;
    let names = tensors
        .iter()
        .map(|(k, t)| (t.id(), k.clone()))
        .collect::<HashMap<_, _>>();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
    let mut g = Graph::new(names);
    g.taken.insert("image".into());
    let logits = match &file.architecture {
        Architecture::MonaiUnet(cfg) => crate::unet::UNet::new(cfg, vb)?.emit(&mut g, "image")?,
        Architecture::PlainUnet(cfg) => {
            crate::plain_unet::PlainUNet::new(cfg, vb)?.emit(&mut g, "image")?
        }
    };
    if g.initializer_bytes >= PROTOBUF_LIMIT {
        return Err(Error::Config(format!(
            "the weights take {} bytes; an ONNX file without external data holds under 2 GiB",
            g.initializer_bytes
        )));
    }
    g.rename(&logits, "logits");
    let probs = g.op("Softmax", &["logits"], vec![("axis", Attr::Int(1))]);
    g.rename(&probs, "probabilities");

    let arch = &file.architecture;
    let io = |name: &str, channels: usize| {
        let dims = [
            Dim::Named("batch"),
            Dim::Fixed(channels),
            Dim::Named("x"),
            Dim::Named("y"),
            Dim::Named("z"),
        ];
        proto::value_info(name, &dims)
    };
    let mut graph = Msg::default();
    for n in &g.nodes {
        let attrs: Vec<(&str, Attr)> = n.attrs.iter().map(|(k, v)| (*k, v.clone())).collect();
        let inputs: Vec<&str> = n.inputs.iter().map(String::as_str).collect();
        graph.msg(
            1,
            &proto::node(&n.name, n.op, &inputs, &[n.output.as_str()], &attrs),
        );
    }
    graph.str(2, "liverseg");
    for t in &g.initializers {
        graph.msg(5, t);
    }
    graph.str(
        10,
        &format!(
            "input `image`: the preprocessed window (N, C, X, Y, Z), each spatial extent divisible by {:?}; outputs `logits` and `probabilities` (soft-max over C)",
            arch.divisor()
        ),
    );
    graph.msg(11, &io("image", arch.in_channels()));
    graph.msg(12, &io("logits", arch.out_channels()));
    graph.msg(12, &io("probabilities", arch.out_channels()));

    let mut opset = Msg::default();
    opset.str(1, "").int(2, ONNX_OPSET);
    let mut model = Msg::default();
    model
        .int(1, IR_VERSION)
        .str(2, "liverseg")
        .str(3, env!("CARGO_PKG_VERSION"))
        .msg(7, &graph)
        .msg(8, &opset);
    let mut meta: Vec<(&String, &String)> = file.metadata.iter().collect();
    meta.sort();
    for (k, v) in meta {
        model.msg(14, &proto::entry(k, v));
    }
    let divisor =
        serde_json::to_string(&arch.divisor()).map_err(|e| Error::Config(e.to_string()))?;
    model.msg(14, &proto::entry("liverseg.divisor", &divisor));
    if model.len() >= PROTOBUF_LIMIT {
        return Err(Error::Config(format!(
            "the ONNX model takes {} bytes, over the 2 GiB limit of one Protocol Buffers message",
            model.len()
        )));
    }
    Ok(model.into_bytes())
}
