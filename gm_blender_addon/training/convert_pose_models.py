"""Convert MediaPipe's pose and hand models (TFLite, Apache-2.0, inside the mediapipe==0.10.21 wheel) to ONNX, once.

    python -m gm_blender_addon.training.convert_pose_models [--mediapipe DIR] [--out gm_blender_addon/data/pose]

The add-on runs the converted models on the onnxruntime it already bundles (core/pose.py), so that capture works in a
stock Blender of any supported version, whose Python MediaPipe may have no wheels for (core/hand_pose.py runs the hand
landmark model). Run this in an environment with `mediapipe==0.10.21` (the source of the models) and `tflite==2.18.0`
(TFLite's flatbuffer schema, for reading them) installed; the shipped results are in gm_blender_addon/data/pose/ with
MediaPipe's licence.

The conversion is exact, not a re-training: each TFLite operator becomes the ONNX operator that computes the same
function, the weights are copied unchanged (float16, widened to float32 in the graph, as TFLite's DEQUANTIZE does),
and sparse weights are expanded to dense ones. TFLite computes in NHWC, ONNX convolutions in NCHW: activations are
kept in NCHW and transposed back wherever TFLite's memory order matters (reshapes, the outputs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# The models and the outputs the add-on reads from each: the pose detector's boxes and scores; the landmark model's
# landmarks, pose presence, heatmap and world landmarks (its segmentation mask is left out); all four outputs of the
# hand landmark model (landmarks, hand presence, handedness, world landmarks).
MODELS = {
    "pose_detection": ("pose_detection/pose_detection.tflite", ["Identity", "Identity_1"]),
    "pose_landmark_full": ("pose_landmark/pose_landmark_full.tflite", ["Identity", "Identity_1", "Identity_3",
                                                                       "Identity_4"]),
    "hand_landmark_full": ("hand_landmark/hand_landmark_full.tflite", ["Identity", "Identity_1", "Identity_2",
                                                                       "Identity_3"]),
}
OPSET = 17
IR_VERSION = 8  # what opset 17 needs, and old enough for every onnxruntime the zips carry
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]
TFLITE_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}
# TFLite's fused activations (ActivationFunctionType): none, ReLU, ReLU6.
NO_ACTIVATION, RELU, RELU6 = 0, 1, 3
SAME_PADDING = 0


def _vector(table, kind: int) -> np.ndarray:
    """A sparse dimension's segments or indices: a union of int32, uint16 and uint8 vectors."""
    import tflite

    vector = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64)


def densify(values: np.ndarray, shape: list[int], sparsity) -> np.ndarray:
    """Expand TFLite's sparse storage (per-dimension DENSE or CSR, traversal order, block map) to a dense array."""
    rank = len(shape)
    order = sparsity.TraversalOrderAsNumpy().tolist()
    block_map = sparsity.BlockMapAsNumpy().tolist() if sparsity.BlockMapLength() else []
    levels = []
    for level in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == 0:
            levels.append((meta.DenseSize(), None, None))
        else:
            levels.append((None, _vector(meta.ArraySegments(), meta.ArraySegmentsType()),
                           _vector(meta.ArrayIndices(), meta.ArrayIndicesType())))
    block_size = {block_map[j]: levels[rank + j][0] for j in range(len(block_map))}
    dense = np.zeros(shape, dtype=values.dtype)
    coordinates = [0] * len(levels)

    def place(position: int) -> None:
        index = []
        for dim in range(rank):
            outer = coordinates[order.index(dim)]
            if dim in block_size:
                outer = outer * block_size[dim] + coordinates[order.index(rank + block_map.index(dim))]
            index.append(outer)
        dense[tuple(index)] = values[position]

    def walk(level: int, position: int) -> None:
        if level == len(levels):
            place(position)
            return
        size, segments, indices = levels[level]
        if size is not None:
            for i in range(size):
                coordinates[level] = i
                walk(level + 1, position * size + i)
        else:
            for p in range(segments[position], segments[position + 1]):
                coordinates[level] = int(indices[p])
                walk(level + 1, p)

    walk(0, 0)
    return dense


class Converter:
    """One TFLite subgraph → one ONNX graph."""

    def __init__(self, model):
        self.model = model
        self.graph = model.Subgraphs(0)
        self.nodes, self.initializers = [], []
        self.constants: dict[int, np.ndarray] = {}  # TFLite tensor index → value, for constant tensors
        self.names: dict[tuple[int, str], str] = {}  # (tensor index, layout) → ONNX name
        self.counter = 0

    # -- tensors ---------------------------------------------------------------------------------------------------

    def tensor(self, index: int):
        return self.graph.Tensors(index)

    def shape(self, index: int) -> list[int]:
        return self.tensor(index).ShapeAsNumpy().tolist()

    def stored(self, index: int) -> np.ndarray | None:
        """A tensor's value from the model file (None for activations)."""
        tensor = self.tensor(index)
        raw = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(raw, int) or raw.size == 0:
            return None
        values = np.frombuffer(raw.tobytes(), dtype=TFLITE_DTYPES[tensor.Type()])
        if tensor.Sparsity() is not None:
            return values  # expanded by the DENSIFY operator that reads it
        return values.reshape(self.shape(index))

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def initializer(self, value: np.ndarray, stem: str) -> str:
        from onnx import numpy_helper

        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(self, index: int, layout: list[int] | None = None, shape: list[int] | None = None) -> str:
        """A constant input as an ONNX initializer, transposed or reshaped as asked, widened to float32 if it was
        stored as float16 (through a Cast, which onnxruntime folds when it loads the model: the file stays small)."""
        value = self.constants[index]
        if layout is not None:
            value = value.transpose(layout)
        if shape is not None:
            value = value.reshape(shape)
        if value.dtype != np.float16:
            return self.initializer(value.astype(np.float32) if value.dtype == np.float32 else value, "const")
        return self.node("Cast", [self.initializer(value, "weight")], to=1)

    def node(self, kind: str, inputs: list[str], **attributes) -> str:
        from onnx import helper

        output = self.fresh(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [output], **attributes))
        return output

    def activation(self, index: int, layout: str) -> str:
        """An activation tensor in the layout asked ('nchw' for 4-D tensors fed to convolutions, else 'nhwc')."""
        if (index, layout) in self.names:
            return self.names[(index, layout)]
        other = "nhwc" if layout == "nchw" else "nchw"
        if (index, other) not in self.names:
            raise KeyError(f"tensor {self.tensor(index).Name()} has not been computed")
        permutation = NHWC_TO_NCHW if layout == "nchw" else NCHW_TO_NHWC
        name = self.node("Transpose", [self.names[(index, other)]], perm=permutation)
        self.names[(index, layout)] = name
        return name

    def set(self, index: int, name: str, layout: str) -> None:
        self.names[(index, layout)] = name

    def fused(self, name: str, code: int) -> str:
        if code == NO_ACTIVATION:
            return name
        if code == RELU:
            return self.node("Relu", [name])
        if code == RELU6:
            return self.node("Clip", [name, self.initializer(np.float32(0), "zero"), self.initializer(np.float32(6), "six")])
        raise NotImplementedError(f"fused activation {code}")

    # -- operators -------------------------------------------------------------------------------------------------

    def options(self, op, kind):
        table = op.BuiltinOptions()
        options = kind()
        options.Init(table.Bytes, table.Pos)
        return options

    def convert(self, op, name: str) -> None:
        import tflite

        inputs = [i for i in op.InputsAsNumpy().tolist()]
        (output,) = op.OutputsAsNumpy().tolist()
        if name == "DENSIFY":
            sparse = self.tensor(inputs[0])
            self.constants[output] = densify(self.stored(inputs[0]), self.shape(output), sparse.Sparsity())
        elif name == "DEQUANTIZE":
            self.constants[output] = self.constants[inputs[0]]  # float16 kept; widened where it is used
        elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = name == "DEPTHWISE_CONV_2D"
            options = self.options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
            filters = self.constants[inputs[1]]  # TFLite: [out, h, w, in]; depthwise: [1, h, w, channels]
            channels = self.shape(inputs[0])[3]
            weight = self.weight(inputs[1], layout=[3, 0, 1, 2] if depthwise else [0, 3, 1, 2])
            attributes = {
                "kernel_shape": list(filters.shape[1:3]),
                "strides": [options.StrideH(), options.StrideW()],
                "dilations": [options.DilationHFactor(), options.DilationWFactor()],
                "auto_pad": "SAME_UPPER" if options.Padding() == SAME_PADDING else "VALID",
                "group": channels if depthwise else 1,
            }
            conv_inputs = [self.activation(inputs[0], "nchw"), weight]
            if len(inputs) > 2 and inputs[2] >= 0:
                conv_inputs.append(self.weight(inputs[2]))
            result = self.node("Conv", conv_inputs, **attributes)
            self.set(output, self.fused(result, options.FusedActivationFunction()), "nchw")
        elif name == "ADD":
            options = self.options(op, tflite.AddOptions)
            operands = []
            for index in inputs:
                if index in self.constants:
                    value = self.constants[index]
                    # Broadcast over NHWC's last axis becomes a broadcast over NCHW's channel axis.
                    shape = [1, value.shape[-1], 1, 1] if value.ndim >= 1 and value.size > 1 else None
                    operands.append(self.weight(index, shape=shape))
                else:
                    operands.append(self.activation(index, "nchw"))
            self.set(output, self.fused(self.node("Add", operands), options.FusedActivationFunction()), "nchw")
        elif name == "PAD":
            paddings = self.constants[inputs[1]][NHWC_TO_NCHW]
            pads = self.initializer(np.concatenate([paddings[:, 0], paddings[:, 1]]).astype(np.int64), "pads")
            self.set(output, self.node("Pad", [self.activation(inputs[0], "nchw"), pads]), "nchw")
        elif name == "MAX_POOL_2D":
            options = self.options(op, tflite.Pool2DOptions)
            result = self.node(
                "MaxPool", [self.activation(inputs[0], "nchw")],
                kernel_shape=[options.FilterHeight(), options.FilterWidth()],
                strides=[options.StrideH(), options.StrideW()],
                auto_pad="SAME_UPPER" if options.Padding() == SAME_PADDING else "VALID",
            )
            self.set(output, self.fused(result, options.FusedActivationFunction()), "nchw")
        elif name == "RESIZE_BILINEAR":
            options = self.options(op, tflite.ResizeBilinearOptions)
            height, width = self.constants[inputs[1]].tolist()
            channels = self.shape(inputs[0])[3]
            mode = ("align_corners" if options.AlignCorners()
                    else "half_pixel" if options.HalfPixelCenters() else "asymmetric")
            sizes = self.initializer(np.array([1, channels, height, width], np.int64), "sizes")
            result = self.node("Resize", [self.activation(inputs[0], "nchw"), "", "", sizes], mode="linear",
                               coordinate_transformation_mode=mode)
            self.set(output, result, "nchw")
        elif name == "DEPTH_TO_SPACE":
            options = self.options(op, tflite.DepthToSpaceOptions)
            result = self.node("DepthToSpace", [self.activation(inputs[0], "nchw")], blocksize=options.BlockSize(),
                               mode="DCR")
            self.set(output, result, "nchw")
        elif name == "RESHAPE":
            shape = self.initializer(np.array(self.shape(output), np.int64), "shape")
            self.set(output, self.node("Reshape", [self.activation(inputs[0], "nhwc"), shape]), "nhwc")
        elif name == "CONCATENATION":
            options = self.options(op, tflite.ConcatenationOptions)
            axis = options.Axis() % len(self.shape(output))
            result = self.node("Concat", [self.activation(i, "nhwc") for i in inputs], axis=axis)
            self.set(output, self.fused(result, options.FusedActivationFunction()), "nhwc")
        elif name == "MEAN":
            options = self.options(op, tflite.ReducerOptions)
            rank = len(self.shape(inputs[0]))
            axes = [a % rank for a in self.constants[inputs[1]].tolist()]
            if rank == 4:
                if not options.KeepDims() and sorted(axes) != [1, 2]:
                    raise NotImplementedError("MEAN that drops other axes than height and width")
                # NHWC axes as NCHW axes: the data stays in NCHW, so do the reduced axes.
                axes = [NHWC_TO_NCHW.index(a) for a in axes]
                layout = "nchw" if options.KeepDims() else "nhwc"  # without height and width: (batch, channels)
                data = self.activation(inputs[0], "nchw")
            else:
                layout, data = "nhwc", self.activation(inputs[0], "nhwc")
            # Opset 17's ReduceMean takes its axes as an attribute (an input only from opset 18).
            self.set(output, self.node("ReduceMean", [data], axes=axes, keepdims=int(options.KeepDims())), layout)
        elif name == "FULLY_CONNECTED":
            options = self.options(op, tflite.FullyConnectedOptions)
            if len(self.shape(inputs[0])) != 2 or options.KeepNumDims():
                raise NotImplementedError("FULLY_CONNECTED on more than a batch of vectors")
            operands = [self.activation(inputs[0], "nhwc"), self.weight(inputs[1])]  # weights: [out, in]
            if len(inputs) > 2 and inputs[2] >= 0:
                operands.append(self.weight(inputs[2]))
            result = self.node("Gemm", operands, transB=1)
            self.set(output, self.fused(result, options.FusedActivationFunction()), "nhwc")
        elif name == "LOGISTIC":
            layout = "nchw" if (inputs[0], "nchw") in self.names else "nhwc"
            self.set(output, self.node("Sigmoid", [self.activation(inputs[0], layout)]), layout)
        else:
            raise NotImplementedError(f"TFLite operator {name}")

    def run(self, wanted: list[str]):
        import tflite
        from onnx import TensorProto, helper

        opcodes = {value: key for key, value in vars(tflite.BuiltinOperator).items() if not key.startswith("_")}
        for index in range(self.graph.TensorsLength()):
            value = self.stored(index)
            if value is not None:
                self.constants[index] = value
        (model_input,) = self.graph.InputsAsNumpy().tolist()
        input_name = self.tensor(model_input).Name().decode()
        self.set(model_input, input_name, "nhwc")
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            self.convert(op, opcodes[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
        outputs = []
        for index in self.graph.OutputsAsNumpy().tolist():
            name = self.tensor(index).Name().decode()
            if name in wanted:
                self.nodes.append(helper.make_node("Identity", [self.activation(index, "nhwc")], [name]))
                outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, self.shape(index)))
        inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, self.shape(model_input))]
        nodes = _needed(self.nodes, [o.name for o in outputs])
        used = {name for node in nodes for name in node.input}
        initializers = [i for i in self.initializers if i.name in used]
        graph = helper.make_graph(nodes, "mediapipe", inputs, outputs, initializers)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                                 producer_name=__name__)


def _needed(nodes, outputs: list[str]):
    """The nodes that the outputs depend on, in their original order."""
    wanted, kept = set(outputs), []
    for node in reversed(nodes):
        if set(node.output) & wanted:
            kept.append(node)
            wanted.update(node.input)
    return kept[::-1]


def convert(tflite_file: Path, wanted: list[str]):
    import tflite

    return Converter(tflite.Model.GetRootAsModel(tflite_file.read_bytes(), 0)).run(wanted)


def main(argv: list[str] | None = None) -> None:
    import onnx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mediapipe", type=Path, help="the mediapipe package folder (default: the installed one)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "pose")
    args = parser.parse_args(argv)
    if args.mediapipe is None:
        import mediapipe

        args.mediapipe = Path(mediapipe.__file__).parent
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (relative, wanted) in MODELS.items():
        model = convert(args.mediapipe / "modules" / relative, wanted)
        onnx.checker.check_model(model)
        onnx.save(model, args.out / f"{name}.onnx")
        print(f"{name}: {len(model.graph.node)} nodes, {(args.out / f'{name}.onnx').stat().st_size / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
