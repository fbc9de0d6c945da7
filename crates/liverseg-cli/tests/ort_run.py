#!/usr/bin/env python3
"""Runs an ONNX model exported by `liverseg export-onnx` in ONNX Runtime
(CPU) on one window, for the tests of `cli_onnx.rs`.

    ort_run.py MODEL.onnx INPUT.f32 D0,D1,D2,D3,D4 LOGITS_OUT.f32

The model is first checked with `onnx.checker` (full check: types and
shapes inferred through every node). The input is little-endian float32
in C order; the logits are written the same way. Prints one JSON line:
the input and output names and shapes, the metadata, the opset, and the
largest deviation of the probabilities' channel sums from 1.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    model, inp, shape, out = sys.argv[1:5]
    proto = onnx.load(model)
    onnx.checker.check_model(proto, full_check=True)
    shape = [int(v) for v in shape.split(",")]
    x = np.fromfile(inp, dtype="<f4").reshape(shape)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    logits, probs = sess.run(["logits", "probabilities"], {"image": x})
    logits.astype("<f4").tofile(out)
    print(json.dumps({
        "inputs": [[i.name, i.shape] for i in sess.get_inputs()],
        "outputs": [[o.name, o.shape] for o in sess.get_outputs()],
        "logits_shape": list(logits.shape),
        "metadata": {p.key: p.value for p in proto.metadata_props},
        "opset": [[o.domain, o.version] for o in proto.opset_import],
        "ops": sorted({n.op_type for n in proto.graph.node}),
        "prob_sum_error": float(np.abs(probs.sum(axis=1) - 1).max()),
    }))


if __name__ == "__main__":
    main()
