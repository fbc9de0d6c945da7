//! The few Protocol Buffers encodings an ONNX file needs, written by hand:
//! varints, length-delimited fields and fixed 32-bit floats, and the ONNX
//! messages built from them (field numbers from `onnx.proto`, IR version 8).

/// Wire type of a varint field.
const VARINT: u32 = 0;
/// Wire type of a length-delimited field (strings, bytes, messages, packed).
const LEN: u32 = 2;
/// Wire type of a fixed 32-bit field (float).
const FIXED32: u32 = 5;

/// One message being encoded.
#[derive(Default)]
pub(crate) struct Msg {
    buf: Vec<u8>,
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

impl Msg {
    fn key(&mut self, field: u32, wire: u32) {
        varint(&mut self.buf, u64::from(field << 3 | wire));
    }

    /// An `int64`/`int32`/enum field (negative values as ten-byte varints).
    pub(crate) fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, VARINT);
        varint(&mut self.buf, v as u64);
        self
    }

    /// A `float` field.
    pub(crate) fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, FIXED32);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `bytes` or `string` field.
    pub(crate) fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, LEN);
        varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// A `string` field.
    pub(crate) fn str(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    /// An embedded message field.
    pub(crate) fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.buf)
    }

    /// A packed `repeated int64` field.
    pub(crate) fn packed_ints(&mut self, field: u32, vs: &[i64]) -> &mut Self {
        let mut packed = Vec::new();
        for &v in vs {
            varint(&mut packed, v as u64);
        }
        self.bytes(field, &packed)
    }

    /// The encoded bytes.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Encoded length so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}

/// `TensorProto.DataType.FLOAT`.
pub(crate) const FLOAT: i64 = 1;

/// A `TensorProto`: float32 data as little-endian `raw_data`.
pub(crate) fn tensor(name: &str, dims: &[usize], data: &[f32]) -> Msg {
    let mut raw = Vec::with_capacity(data.len() * 4);
    for v in data {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let mut m = Msg::default();
    m.packed_ints(1, &dims)
        .int(2, FLOAT)
        .str(8, name)
        .bytes(9, &raw);
    m
}

/// One dimension of a value's shape: fixed, or named (symbolic).
#[derive(Clone, Copy)]
pub(crate) enum Dim<'a> {
    Fixed(usize),
    Named(&'a str),
}

/// A `ValueInfoProto` of a float tensor with this shape.
pub(crate) fn value_info(name: &str, dims: &[Dim<'_>]) -> Msg {
    let mut shape = Msg::default();
    for d in dims {
        let mut dim = Msg::default();
        match d {
            Dim::Fixed(v) => dim.int(1, *v as i64),
            Dim::Named(s) => dim.str(2, s),
        };
        shape.msg(1, &dim);
    }
    let mut tensor_type = Msg::default();
    tensor_type.int(1, FLOAT).msg(2, &shape);
    let mut ty = Msg::default();
    ty.msg(1, &tensor_type);
    let mut v = Msg::default();
    v.str(1, name).msg(2, &ty);
    v
}

/// A node attribute's value.
#[derive(Clone, Debug)]
pub(crate) enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
}

/// An `AttributeProto`.
pub(crate) fn attribute(name: &str, value: &Attr) -> Msg {
    // AttributeType: FLOAT = 1, INT = 2, INTS = 7.
    let mut a = Msg::default();
    a.str(1, name);
    match value {
        Attr::Float(f) => a.float(2, *f).int(20, 1),
        Attr::Int(i) => a.int(3, *i).int(20, 2),
        Attr::Ints(is) => a.packed_ints(8, is).int(20, 7),
    };
    a
}

/// A `NodeProto`.
pub(crate) fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[(&str, Attr)],
) -> Msg {
    let mut n = Msg::default();
    for i in inputs {
        n.str(1, i);
    }
    for o in outputs {
        n.str(2, o);
    }
    n.str(3, name).str(4, op);
    for (k, v) in attrs {
        n.msg(5, &attribute(k, v));
    }
    n
}

/// A `StringStringEntryProto` (metadata).
pub(crate) fn entry(key: &str, value: &str) -> Msg {
    let mut e = Msg::default();
    e.str(1, key).str(2, value);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_protobuf_encoding() {
        // The examples of the Protocol Buffers encoding guide: 150 in field
        // 1 is 08 96 01; 300 is ac 02; -1 takes ten bytes.
        let mut m = Msg::default();
        m.int(1, 150);
        assert_eq!(m.into_bytes(), [0x08, 0x96, 0x01]);
        let mut m = Msg::default();
        m.int(2, 300).str(3, "ab");
        assert_eq!(m.into_bytes(), [0x10, 0xac, 0x02, 0x1a, 0x02, b'a', b'b']);
        let mut m = Msg::default();
        m.int(1, -1);
        let b = m.into_bytes();
        assert_eq!(b.len(), 11);
        assert_eq!(b[10], 0x01);
        let mut m = Msg::default();
        m.float(2, 1.0).packed_ints(8, &[1, 300]);
        assert_eq!(
            m.into_bytes(),
            [0x15, 0, 0, 0x80, 0x3f, 0x42, 0x03, 0x01, 0xac, 0x02]
        );
    }
}
