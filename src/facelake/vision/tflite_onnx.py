"""A TFLite → ONNX converter for the op set of MobileFaceNet (and similar float32 CNNs).

Why our own: onnxruntime is facelake's one runtime, and the kept converters either need
TensorFlow (tf2onnx, a multi-GB dependency) or are unmaintained; MobileFaceNet uses eight
builtin ops, each a line or two of ONNX. Like ``dlib_onnx`` for dlib's ``.dat`` file, this
reads the weights from the file the package ships and rebuilds the same computation.

Layout: TFLite is NHWC, ONNX's Conv is NCHW. The graph transposes its input once and keeps
every activation NCHW; per-channel constants of elementwise ops are reshaped to
``[1, C, 1, 1]``; a RESHAPE first transposes back to NHWC, so it flattens in TFLite's order.
The batch dimension becomes dynamic (the shipped file fixes it, e.g. at 2).

Anything outside the supported set raises: a model it cannot convert exactly is refused,
never approximated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ModelLoadError

SUPPORTED = ("ADD", "SUB", "MUL", "ABS", "RELU", "CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE")
_ACTIVATIONS = {0: None, 1: "Relu", 3: "Relu6"}


def _op_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def convert(data: bytes, input_name: str = "input", output_name: str = "embeddings") -> bytes:
    """The ONNX model (serialized) computing what the TFLite flatbuffer ``data`` computes."""
    try:
        import onnx
        import tflite
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise ModelLoadError(f"converting a TFLite model needs the 'tflite' package: {exc}") from exc

    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    names = _op_names()
    nodes: list[Any] = []
    inits: list[Any] = []
    counter = [0]

    def fresh(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def tensor(i: int) -> Any:
        return graph.Tensors(i)

    def const(i: int) -> NDArray[np.float32] | None:
        t = tensor(i)
        buf = model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(buf, int) or buf.size == 0:
            return None
        if t.Type() != tflite.TensorType.FLOAT32:
            raise ModelLoadError(f"tensor {t.Name().decode()}: only float32 weights are supported, got type {t.Type()}")
        shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        return np.frombuffer(buf.tobytes(), dtype=np.float32).reshape(shape)

    def add_init(array: NDArray[Any], prefix: str) -> str:
        name = fresh(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def value(i: int) -> str:
        """The ONNX name of tensor ``i``: an activation, or a constant laid out for NCHW broadcasting."""
        c = const(i)
        if c is None:
            return f"t{i}"
        if c.ndim >= 1 and c.size > 1:
            c = c.reshape(-1)[None, :, None, None] if c.shape[-1] == c.size else c
        return add_init(c.astype(np.float32), "c")

    def options(op: Any, cls: Any) -> Any:
        table = op.BuiltinOptions()
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def activation(out: str, fused: int) -> list[Any]:
        if fused not in _ACTIVATIONS:
            raise ModelLoadError(f"fused activation {fused} is not supported")
        kind = _ACTIVATIONS[fused]
        if kind is None:
            return []
        return [helper.make_node("Relu", [out], [out + "_act"])] if kind == "Relu" else [
            helper.make_node("Clip", [out, add_init(np.array(0, np.float32), "lo"),
                                      add_init(np.array(6, np.float32), "hi")], [out + "_act"])]

    def emit(outputs: list[Any], result: str, target: str, fused: int) -> None:
        acts = activation(result, fused)
        nodes.extend(outputs)
        if acts:
            nodes.extend(acts)
            nodes.append(helper.make_node("Identity", [result + "_act"], [target]))
        elif result != target:
            nodes.append(helper.make_node("Identity", [result], [target]))

    def pads(in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], dil: tuple[int, int],
             padding: int) -> list[int]:
        if padding == tflite.Padding.VALID:
            return [0, 0, 0, 0]
        total = []
        for size, k, s, d in zip(in_hw, kernel, stride, dil):
            out = -(-size // s)
            total.append(max(0, (out - 1) * s + (k - 1) * d + 1 - size))
        return [total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2]

    in_index = graph.Inputs(0)
    in_shape = [int(d) for d in tensor(in_index).ShapeAsNumpy()]
    nodes.append(helper.make_node("Transpose", [input_name], [f"t{in_index}"], perm=[0, 3, 1, 2]))

    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        ins = [int(i) for i in op.InputsAsNumpy()]
        out = f"t{int(op.Outputs(0))}"
        if kind in ("ADD", "SUB", "MUL"):
            cls = {"ADD": tflite.AddOptions, "SUB": tflite.SubOptions, "MUL": tflite.MulOptions}[kind]
            fused = options(op, cls).FusedActivationFunction() if op.BuiltinOptions() else 0
            tmp = fresh("ew")
            emit([helper.make_node(kind.capitalize(), [value(ins[0]), value(ins[1])], [tmp])], tmp, out, fused)
        elif kind in ("ABS", "RELU"):
            nodes.append(helper.make_node(kind.capitalize(), [value(ins[0])], [out]))
        elif kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            weight = const(ins[1])
            if weight is None:
                raise ModelLoadError(f"{kind}: the filter must be a constant")
            shape_in = [int(d) for d in tensor(ins[0]).ShapeAsNumpy()]
            if kind == "CONV_2D":
                o = options(op, tflite.Conv2DOptions)
                w = weight.transpose(0, 3, 1, 2)  # OHWI → OIHW
                group = 1
            else:
                o = options(op, tflite.DepthwiseConv2DOptions)
                channels = shape_in[3]
                w = weight.transpose(3, 0, 1, 2)  # 1HW(C·M) → (C·M)1HW
                group = channels
            kernel = (int(w.shape[2]), int(w.shape[3]))
            stride = (o.StrideH(), o.StrideW())
            dil = (max(1, o.DilationHFactor()), max(1, o.DilationWFactor()))
            bias = const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            inputs = [f"t{ins[0]}", add_init(w.astype(np.float32), "w")]
            if bias is not None:
                inputs.append(add_init(bias.astype(np.float32), "b"))
            tmp = fresh("conv")
            conv = helper.make_node("Conv", inputs, [tmp], kernel_shape=list(kernel), strides=list(stride),
                                    dilations=list(dil), group=group,
                                    pads=pads((shape_in[1], shape_in[2]), kernel, stride, dil, o.Padding()))
            emit([conv], tmp, out, o.FusedActivationFunction())
        elif kind == "RESHAPE":
            target = [int(d) for d in tensor(int(op.Outputs(0))).ShapeAsNumpy()]
            target[0] = -1
            nhwc = fresh("nhwc")
            nodes.append(helper.make_node("Transpose", [f"t{ins[0]}"], [nhwc], perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Reshape", [nhwc, add_init(np.array(target, np.int64), "shape")], [out]))
        else:
            raise ModelLoadError(f"TFLite op {kind} is not supported by facelake's converter (supported: {SUPPORTED})")

    out_index = graph.Outputs(0)
    out_shape = [int(d) for d in tensor(out_index).ShapeAsNumpy()]
    nodes.append(helper.make_node("Identity", [f"t{out_index}"], [output_name]))
    onnx_graph = helper.make_graph(
        nodes, "converted_from_tflite",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", *in_shape[1:]])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", *out_shape[1:]])],
        initializer=inits,
    )
    onnx_model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", 13)],
                                   producer_name="facelake.tflite_onnx")
    onnx_model.ir_version = 8
    fold_prelu(onnx_model)
    onnx.checker.check_model(onnx_model)
    return bytes(onnx_model.SerializeToString())


def fold_prelu(model: Any) -> int:
    """Rewrite TFLite's spelled-out PReLU, ``relu(x) + c·(x − |x|)``, as two depthwise 1×1
    convolutions, ``α·x + (1 − α)·relu(x)`` with ``α = 2c``; returns how many were rewritten.

    Why: the same numbers (to float rounding) in half the time of the layer. onnxruntime runs
    convolutions in a blocked channel layout; Abs, Sub and Mul by a per-channel constant
    are not in it, so each PReLU reordered its tensor out of that layout and back, and
    MobileFaceNet has 33 of them: 9.2 → 6.0 ms a chip. Identity nodes are dropped on the way.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    outputs = {o.name for o in graph.output}
    alias: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
            continue
        node.input[:] = [alias.get(name, name) for name in node.input]
        nodes.append(node)
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in nodes for out in node.output}
    readers: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1

    def only(name: str, op: str) -> Any:
        node = producer.get(name)
        return node if node is not None and node.op_type == op and readers.get(name) == 1 else None

    replaced: dict[int, list[Any]] = {}
    dropped: set[int] = set()
    for node in nodes:
        if node.op_type != "Add":
            continue
        relu, mul = (only(node.input[0], "Relu"), only(node.input[1], "Mul"))
        if relu is None or mul is None:
            relu, mul = only(node.input[1], "Relu"), only(node.input[0], "Mul")
        if relu is None or mul is None:
            continue
        c_name = next((n for n in mul.input if n in consts), None)
        sub = only(next((n for n in mul.input if n not in consts), ""), "Sub")
        x = relu.input[0]
        if c_name is None or sub is None or sub.input[0] != x or only(sub.input[1], "Abs") is None \
                or producer[sub.input[1]].input[0] != x or consts[c_name].ndim != 4 \
                or consts[c_name].shape[0] != 1 or consts[c_name].shape[2:] != (1, 1):
            continue
        alpha = (2.0 * consts[c_name]).reshape(-1, 1, 1, 1).astype(np.float32)
        k = len(replaced)
        scaled, kept, relu_out = f"prelu{k}_ax", f"prelu{k}_relu_scaled", f"prelu{k}_relu"
        graph.initializer.extend([numpy_helper.from_array(alpha, f"prelu{k}_alpha"),
                                  numpy_helper.from_array((1.0 - alpha).astype(np.float32), f"prelu{k}_rest")])
        channels = int(alpha.shape[0])
        replaced[id(node)] = [
            helper.make_node("Conv", [x, f"prelu{k}_alpha"], [scaled], group=channels, kernel_shape=[1, 1]),
            helper.make_node("Relu", [x], [relu_out]),
            helper.make_node("Conv", [relu_out, f"prelu{k}_rest"], [kept], group=channels, kernel_shape=[1, 1]),
            helper.make_node("Add", [kept, scaled], [node.output[0]]),
        ]
        dropped |= {id(relu), id(mul), id(sub), id(producer[sub.input[1]])}
    rewritten = [new for node in nodes if id(node) not in dropped for new in replaced.get(id(node), [node])]
    del graph.node[:]
    graph.node.extend(rewritten)
    used = {name for node in rewritten for name in node.input}
    kept_inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    return len(replaced)
