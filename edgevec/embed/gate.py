"""The model gate: what an ONNX graph may hold before onnxruntime is shown it.

An index file is untrusted input, and so is the text model it carries: onnxruntime reads
an initializer's external data from a path relative to the process's working directory,
runs `Loop`s for as long as their trip count says, and allocates whatever a constant
shape asks for. onnxruntime has no session option that refuses external data (only a
build flag), so this module walks the protobuf bytes itself, without the `onnx` package
(nothing here allocates more than the structure of the graph: tensor payloads are skipped
by length) and refuses, with `UnsafeModel` naming the tensor or node and the rule:

- any tensor whose data lives outside the model (external data), anywhere in the graph;
- a node outside the standard ONNX and com.microsoft domains or outside `ALLOWED_OPS`;
- control flow (`Loop`, `Scan`, `If`, graph-valued attributes) and model-local functions
  or training graphs, unless the caller allows control flow for a model of their own;
- a tensor, declared shape or constant size operand over a cap tied to the model's size.

formats/SPEC.md ("Security") documents the rules and the op list.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import UnsafeModel

# The standard ONNX operators a BERT-family sentence encoder needs (edgevec's own builds
# use a subset: see models/README.md), and the com.microsoft operators onnxruntime's
# graph optimiser writes into the optimised copies it caches. Nothing here reads a file,
# loads a library or loops.
ONNX_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh BatchNormalization Cast CastLike
Ceil Celu Clip Concat Constant ConstantOfShape Cos Cosh CumSum DequantizeLinear Div Dropout
DynamicQuantizeLinear Einsum Elu Equal Erf Exp Expand Flatten Floor Gather GatherElements
GatherND Gelu Gemm Greater GreaterOrEqual HardSigmoid HardSwish Identity InstanceNormalization
IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax MatMul MatMulInteger
Max Mean Min Mish Mod Mul Neg Not Or Pad Pow PRelu QuantizeLinear Range Reciprocal ReduceL1
ReduceL2 ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare
Relu Reshape RMSNormalization Round ScatterElements ScatterND Selu Shape Sigmoid Sign Sin
Sinh Size Slice Softmax Softplus Softsign Split Sqrt Squeeze Sub Sum Tan Tanh Tile TopK
Transpose Trilu Unsqueeze Where Xor
""".split())
MICROSOFT_OPS = frozenset("""
Attention BiasAdd BiasGelu BiasSoftmax DynamicQuantizeMatMul EmbedLayerNormalization
FastGelu FusedGemm FusedMatMul Gelu GemmFastGelu GroupQueryAttention MatMulIntegerToFloat
MatMulNBits MultiHeadAttention QuickGelu RotaryEmbedding SimplifiedLayerNormalization
SkipLayerNormalization SkipSimplifiedLayerNormalization
""".split())
CONTROL_FLOW_OPS = frozenset({"Loop", "Scan", "If", "SequenceMap"})
DOMAINS = {"": ONNX_OPS, "ai.onnx": ONNX_OPS, "com.microsoft": MICROSOFT_OPS}
# A model's tensors and constant size operands may not exceed this many elements, nor
# the model's own byte size (whichever is larger): a real model's biggest tensor is one
# of its weight matrices, and a shape constant asking for more is an attack.
MIN_ELEMENT_CAP = 1 << 24
MAX_NODES = 200_000
MAX_SUBGRAPH_DEPTH = 4
MAX_RANK = 16

# protobuf field numbers (onnx/onnx.proto)
_M_GRAPH, _M_TRAINING, _M_FUNCTIONS = 7, 20, 25
_G_NODE, _G_INIT, _G_INPUT, _G_OUTPUT, _G_VALUE_INFO, _G_SPARSE = 1, 5, 11, 12, 13, 15
_N_INPUT, _N_OUTPUT, _N_NAME, _N_OP, _N_ATTR, _N_DOMAIN = 1, 2, 3, 4, 5, 7
_A_NAME, _A_T, _A_G, _A_TENSORS, _A_GRAPHS, _A_SPARSE, _A_SPARSES = 1, 5, 6, 10, 11, 22, 23
_T_DIMS, _T_TYPE, _T_INT32, _T_INT64, _T_NAME, _T_RAW, _T_EXTERNAL, _T_LOCATION = (
    1, 2, 5, 7, 8, 9, 13, 14)
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8,
             14: 8, 15: 16, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1, 23: 1}
# the operand whose value sets an output's size: op -> input position
_SIZE_OPERANDS = {"ConstantOfShape": 0, "Expand": 1, "Tile": 1, "Range": 1, "Pad": 1}


class _Malformed(Exception):
    pass


@dataclass(frozen=True)
class ModelFacts:
    """What the gate learnt of a graph that the embedder checks its config against."""

    # rows of the smallest 2-D table gathered by an index that is not a graph input:
    # the position table of a BERT-family model (None if there is none)
    position_rows: int | None

    def to_json(self) -> bytes:
        return json.dumps({"position_rows": self.position_rows}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "ModelFacts":
        """Read back what to_json wrote (edgevec's own cache); ValueError if damaged."""
        rows = json.loads(data)["position_rows"]
        if rows is not None and (type(rows) is not int or rows < 1):
            raise ValueError(f"bad position_rows {rows!r:.40}")
        return cls(position_rows=rows)


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed(pos)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int):
    """(field, wire type, value, start, end) for each field of the message in
    buf[start:end]: `value` is the integer of a varint or fixed field, and
    [start, end) the bytes of a length-delimited one."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, 0, value, pos, pos
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise _Malformed(pos)
            yield field, 2, 0, pos, pos + n
            pos += n
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise _Malformed(pos)
            value = int.from_bytes(buf[pos:pos + size], "little")
            yield field, wire, value, pos, pos + size
            pos += size
        else:  # groups (3, 4) are not part of ONNX; 6, 7 do not exist
            raise _Malformed(pos)
    if pos != end:
        raise _Malformed(pos)


def _text(buf: memoryview, a: int, b: int) -> str:
    return bytes(buf[a:b]).decode("utf-8", "replace")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


class _Gate:
    def __init__(self, data: bytes, source: str, *, allow_control_flow: bool,
                 external: dict[str, int] | None) -> None:
        self.buf = memoryview(data)
        self.source = source
        self.allow_control_flow = allow_control_flow
        self.external = external or {}
        self.cap = max(MIN_ELEMENT_CAP, len(data))
        self.nodes = 0
        self.constants: dict[str, np.ndarray] = {}
        self.tables: dict[str, int] = {}  # 2-D initializers: name -> rows
        self.inputs: set[str] = set()
        self.gathered: list[int] = []

    def refuse(self, what: str, rule: str) -> None:
        raise UnsafeModel(f"{self.source}: {what}: {rule}; edgevec refuses to load this "
                          "model (formats/SPEC.md, 'Security')")

    # --- the messages -----------------------------------------------------------------

    def model(self) -> None:
        buf = self.buf
        graph = None
        for field, wire, _, a, b in _fields(buf, 0, len(buf)):
            if field == _M_GRAPH and wire == 2:
                graph = (a, b)
            elif field == _M_FUNCTIONS and not self.allow_control_flow:
                self.refuse("model-local function", "functions are refused unless control "
                            "flow is allowed for a model of your own")
            elif field == _M_TRAINING:
                self.refuse("training_info", "training graphs are not part of an embedder")
        if graph is None:
            self.refuse("the model", "it has no graph")
        self.graph(*graph, depth=0)

    def graph(self, a: int, b: int, *, depth: int) -> None:
        buf = self.buf
        nodes = []
        for field, wire, _, x, y in _fields(buf, a, b):
            if wire != 2:
                continue
            if field == _G_INIT:
                self.tensor(x, y, "initializer", keep=depth == 0)
            elif field == _G_SPARSE:
                self.sparse(x, y, "sparse initializer")
            elif field == _G_NODE:
                nodes.append((x, y))
            elif field in (_G_INPUT, _G_OUTPUT, _G_VALUE_INFO):
                name = self.value_info(x, y)
                if field == _G_INPUT and depth == 0:
                    self.inputs.add(name)
        for x, y in nodes:
            self.node(x, y, depth=depth)

    def node(self, a: int, b: int, *, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.refuse(f"{self.nodes} nodes", f"a model may have at most {MAX_NODES}")
        buf = self.buf
        op = name = domain = ""
        inputs: list[str] = []
        outputs: list[str] = []
        attrs = []
        for field, wire, _, x, y in _fields(buf, a, b):
            if wire != 2:
                continue
            if field == _N_OP:
                op = _text(buf, x, y)
            elif field == _N_NAME:
                name = _text(buf, x, y)
            elif field == _N_DOMAIN:
                domain = _text(buf, x, y)
            elif field == _N_INPUT:
                inputs.append(_text(buf, x, y))
            elif field == _N_OUTPUT:
                outputs.append(_text(buf, x, y))
            elif field == _N_ATTR:
                attrs.append((x, y))
        what = f"node {name or '(unnamed)'!r:.80} ({domain + '.' if domain else ''}{op:.60})"
        allowed = DOMAINS.get(domain)
        if allowed is None:
            self.refuse(what, "only the standard ONNX and com.microsoft domains are allowed")
        if op in CONTROL_FLOW_OPS and domain in ("", "ai.onnx"):
            if not self.allow_control_flow:
                self.refuse(what, "control flow (Loop, Scan, If) can run without bound; it "
                            "is refused unless you allow it for a model of your own "
                            "(Embedder.load(directory, allow_control_flow=True))")
        elif op not in allowed:
            self.refuse(what, "the operator is not on edgevec's allow-list")
        for x, y in attrs:
            value = self.attribute(x, y, what, depth=depth)
            if value is not None and op == "Constant" and outputs:
                self.constants[outputs[0]] = value
        if (op == "Gather" and domain in ("", "ai.onnx") and len(inputs) > 1
                and inputs[0] in self.tables and inputs[1] not in self.inputs):
            self.gathered.append(self.tables[inputs[0]])
        operand = _SIZE_OPERANDS.get(op)
        if operand is not None and operand < len(inputs):
            self.size_operand(op, inputs, operand, what)

    def attribute(self, a: int, b: int, what: str, *, depth: int) -> np.ndarray | None:
        """Check one attribute; return its value if it is a short integer tensor."""
        buf = self.buf
        value = None
        for field, wire, _, x, y in _fields(buf, a, b):
            if wire != 2:
                continue
            if field in (_A_T, _A_TENSORS):
                value = self.tensor(x, y, f"{what}'s attribute tensor", keep=True)
            elif field in (_A_SPARSE, _A_SPARSES):
                self.sparse(x, y, f"{what}'s attribute")
            elif field in (_A_G, _A_GRAPHS):
                if not self.allow_control_flow:
                    self.refuse(what, "graph-valued attributes (subgraphs) are refused "
                                "unless control flow is allowed for a model of your own")
                if depth + 1 > MAX_SUBGRAPH_DEPTH:
                    self.refuse(what, f"subgraphs nest deeper than {MAX_SUBGRAPH_DEPTH}")
                self.graph(x, y, depth=depth + 1)
        return value

    def sparse(self, a: int, b: int, what: str) -> None:
        for field, wire, _, x, y in _fields(self.buf, a, b):
            if wire == 2 and field in (1, 2):  # values, indices
                self.tensor(x, y, what, keep=False)

    def value_info(self, a: int, b: int) -> str:
        """A declared input, output or intermediate: its fixed dims within the cap; returns
        its name."""
        buf = self.buf
        name = ""
        dims: list[int] = []
        for field, wire, _, x, y in _fields(buf, a, b):
            if field == 1 and wire == 2:
                name = _text(buf, x, y)
            elif field == 2 and wire == 2:  # TypeProto -> tensor_type -> shape -> dim
                for f, w, _, p, q in _fields(buf, x, y):
                    if f != 1 or w != 2:
                        continue
                    for f2, w2, _, s, t in _fields(buf, p, q):
                        if f2 != 2 or w2 != 2:
                            continue
                        for f3, w3, _, u, v in _fields(buf, s, t):
                            if f3 != 1 or w3 != 2:
                                continue
                            for f4, w4, val, _, _ in _fields(buf, u, v):
                                if f4 == 1 and w4 == 0:
                                    dims.append(_signed(val))
        self.check_size(dims, f"declared value {name!r:.80}")
        return name

    def check_size(self, dims: list[int], what: str) -> None:
        if len(dims) > MAX_RANK:
            self.refuse(what, f"rank {len(dims)} is over {MAX_RANK}")
        n = 1
        for d in dims:
            if d < 0:
                self.refuse(what, f"dimension {d} is negative")
            n *= d
        if n > self.cap:
            self.refuse(what, f"shape {dims} holds {n} elements, over the cap of {self.cap} "
                        "(the model's size in bytes, at least 2**24)")

    def tensor(self, a: int, b: int, what: str, *, keep: bool) -> np.ndarray | None:
        buf = self.buf
        dims: list[int] = []
        dtype = 0
        name = ""
        raw = None
        ints: list[tuple[int, int, int]] = []
        external: dict[str, str] = {}
        location = 0
        for field, wire, val, x, y in _fields(buf, a, b):
            if field == _T_DIMS:
                if wire == 0:
                    dims.append(_signed(val))
                elif wire == 2:  # packed
                    p = x
                    while p < y:
                        v, p = _varint(buf, p, y)
                        dims.append(_signed(v))
            elif field == _T_TYPE and wire == 0:
                dtype = val
            elif field == _T_NAME and wire == 2:
                name = _text(buf, x, y)
            elif field == _T_RAW and wire == 2:
                raw = (x, y)
            elif field in (_T_INT32, _T_INT64):
                ints.append((wire, val, x if wire == 2 else -1, y))
            elif field == _T_EXTERNAL and wire == 2:
                key = value = ""
                for f, w, _, p, q in _fields(buf, x, y):
                    if f == 1 and w == 2:
                        key = _text(buf, p, q)
                    elif f == 2 and w == 2:
                        value = _text(buf, p, q)
                external[key] = value
            elif field == _T_LOCATION and wire == 0:
                location = val
        label = f"{what} {name!r:.80}" if name else what
        if location != 0 or external:
            self.check_external(label, external)
        self.check_size(dims, label)
        if keep and len(dims) == 2 and name:
            self.tables[name] = dims[0]
        if not keep or len(dims) > 1 or dtype not in (6, 7):  # int32 / int64 operands
            return None
        values = self._ints(dims, dtype, raw, ints)
        if values is not None and name:
            self.constants[name] = values
        return values

    def _ints(self, dims, dtype, raw, ints) -> np.ndarray | None:
        count = int(np.prod(dims)) if dims else 1
        if count > 64:
            return None  # shape operands are short; a long one is not a size
        if raw is not None:
            width = 4 if dtype == 6 else 8
            data = bytes(self.buf[raw[0]:raw[1]])
            if len(data) != count * width:
                return None
            return np.array(struct.unpack(f"<{count}{'i' if width == 4 else 'q'}", data),
                            dtype=np.int64)
        out = []
        for wire, val, x, y in ints:
            if wire == 0:
                out.append(_signed(val))
            elif wire == 2:
                p = x
                while p < y:
                    v, p = _varint(self.buf, p, y)
                    out.append(_signed(v))
        return np.array(out, dtype=np.int64) if len(out) == count else None

    def check_external(self, label: str, external: dict[str, str]) -> None:
        location = external.get("location", "")
        size = self.external.get(location)
        if size is None:
            self.refuse(label, f"its data is stored outside the model (external data, "
                        f"location={location!r:.120}); a model must carry its tensors")
        try:
            offset = int(external.get("offset", "0"))
            length = int(external.get("length", "-1"))
        except ValueError:
            self.refuse(label, "its external data offset or length is not an integer")
        if offset < 0 or length < 0 or offset + length > size:
            self.refuse(label, f"its external data [{offset}, {offset + length}) lies outside "
                        f"{location} ({size} bytes)")

    def size_operand(self, op: str, inputs: list[str], operand: int, what: str) -> None:
        """A constant that sets the size of an output (ConstantOfShape's shape, Expand's,
        Tile's repeats, Range's limit, Pad's pads) within the cap. Sizes computed at run
        time come from the input's shape and are bounded there."""
        value = self.constants.get(inputs[operand])
        if value is None:
            return
        if op == "Range":
            start = self.constants.get(inputs[0])
            delta = self.constants.get(inputs[2]) if len(inputs) > 2 else None
            if start is None or delta is None or not delta.size or not delta.flat[0]:
                return
            n = (int(value.flat[0]) - int(start.flat[0])) // int(delta.flat[0])
            sizes = [max(n, 0)]
        elif op == "Pad":
            sizes = [int(abs(v)) for v in value.tolist()]
            sizes = [sum(sizes)]
        else:
            sizes = value.tolist()
        self.check_size(sizes, f"{what}'s size operand {inputs[operand]!r:.80}")


def check_model(data: bytes, source: str, *, allow_control_flow: bool = False,
                external: dict[str, int] | None = None) -> ModelFacts:
    """Raise `UnsafeModel` unless the serialized ONNX model `data` passes the gate.
    `external` maps the only external-data file names allowed (edgevec's own optimised
    cache) to their sizes; every other tensor must be inside the model."""
    gate = _Gate(data, source, allow_control_flow=allow_control_flow, external=external)
    try:
        gate.model()
    except _Malformed as exc:
        raise UnsafeModel(f"{source}: cannot be loaded: not a well-formed ONNX model "
                          f"(protobuf encoding broken near byte {exc.args[0]}); rebuild or "
                          "re-download the model") from None
    return ModelFacts(position_rows=min(gate.gathered) if gate.gathered else None)
