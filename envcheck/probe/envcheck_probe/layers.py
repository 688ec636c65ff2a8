"""The layer record: every intermediate float tensor of the serving function on a few golden samples, in
topological order, summarised small enough to ship in a golden (about 1 KB per tensor), so that the host can
find where two environments' numbers first part (envcheck/compare/localization.py).

How: the signature's call is inlined into one graph (a private TensorFlow API, feature-detected), its
captured variables are bound again, and `wrap_function(...).prune(feeds, fetches)` fetches the tensors. With
every tensor fetched nothing can be fused, so the record is of the unfused graph; Grappler's remapper is
turned off for the pass so that splitting the fetches (to bound memory) cannot change that. Whether the
unfused outputs equal the fused ones is recorded with it. A graph this cannot handle is
{"status": "unsupported", "reason": ...}: the rest of the capture is untouched.

When: the record costs a pass over the model per group of tensors, and tells something only where the outputs
differ from the golden's. So by default (`--layers auto`) a probe records it only when the golden has a layer
record and one of its outputs is not bitwise the golden's (the manifest's `expected_digests`, compared with
output_digest); where every output is, the capture's `layers` says it was skipped and why. A golden without
digests (made before them) is recorded as before; `--layers always` and `never` decide alone.
"""
import base64
import hashlib
import heapq
import re
import time

from .errors import first_line
from .files import read_bundle_manifest
from .inputs import sample_count
from .model import run_signature

LAYERS_SCHEMA = "envcheck.layers/1"
LAYER_SAMPLES = 4
"""Samples of the golden set the layer pass runs (from the first batch)."""
SAMPLE_ELEMENTS = 64
"""Elements of each tensor kept exactly (at deterministic indices), from which errors are measured."""
MAX_FETCH_BYTES = 256 << 20
"""At most this much of tensors is fetched by one call; a model with more is fetched in groups."""
DEFAULT_BUDGET_S = 120.0
MODE = "unfused: every recorded tensor fetched, Grappler's remapper off"
# Ops whose outputs are not computed values (constants, variables, feeds) or only copy their input.
_NOT_COMPUTED = frozenset(("Const", "Placeholder", "ReadVariableOp", "VarHandleOp", "NoOp", "Identity", "IdentityN",
                           "StopGradient", "Snapshot", "PreventGradient"))
_PASS_THROUGH = frozenset(("Identity", "IdentityN", "StopGradient", "Snapshot", "PreventGradient"))
_FLOAT_TYPES = ("float16", "bfloat16", "float32", "float64")
_CALL_PREFIX = re.compile(r"^(?:(?:Stateful)?PartitionedCall(?:_\d+)?/)+")


LAYER_MODES = ("auto", "always", "never")
"""--layers: record when an output differs from the golden's (auto), on every probe (always), or never."""
SKIPPED_REASON = "every output bitwise equal to the golden's"
TRIGGERS = ("always", "outputs-differ", "golden-without-digests")
"""Why a record was taken (its `trigger`): asked for, an output not bitwise the golden's, or a golden without
the digests that would tell (made before them)."""


def golden_has_layers(bundle_dir):
    """Whether the golden holds a layer record its probes should match: its manifest's `layers` says ok (the
    record itself stays with the host, which compares)."""
    summary = read_bundle_manifest(bundle_dir).get("layers")
    return isinstance(summary, dict) and summary.get("status") == "ok"


def layers_to_record(mode, bundle_dir, np, outputs):
    """What the record-layers stage does for `mode` (LAYER_MODES) once the model ran: (trigger, None) records the
    layers (trigger: TRIGGERS), (None, record) keeps a "skipped" record saying why instead, (None, None) neither
    (never; auto with a golden without a layer record: nothing to compare one with)."""
    if mode == "always":
        return "always", None
    if mode == "never" or not golden_has_layers(bundle_dir):
        return None, None
    expected = read_bundle_manifest(bundle_dir).get("expected_digests")
    if not isinstance(expected, dict) or not expected:
        return "golden-without-digests", None
    if set(expected) != set(outputs) or any(expected[name] != output_digest(np, array)
                                            for name, array in outputs.items()):
        return "outputs-differ", None
    return None, {"schema": LAYERS_SCHEMA, "status": "skipped", "reason": SKIPPED_REASON}


def output_digest(np, array):
    """sha256 of an output's dtype (numpy's dtype.str), shape and C-order bytes, hashed as
    `<dtype.str>|<d0,d1,...>|` then the bytes: what the golden's manifest holds per expected output
    (`expected_digests`; the host's copy of this rule is envcheck/golden.py's output_digest, and
    tests/test_expected_digests.py holds the two equal). Never copies a contiguous array (a memory map
    stays on disk); None for an array whose bytes are not its values (object dtype)."""
    if array.dtype.hasobject:
        return None
    shape = ",".join(str(size) for size in array.shape)
    digest = hashlib.sha256(("%s|%s|" % (array.dtype.str, shape)).encode("ascii"))
    digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    return digest.hexdigest()


class Unsupported(Exception):
    """This graph or this TensorFlow cannot be recorded layer by layer; the message says why."""


def layer_record(tf, np, signature, inputs, budget_s=DEFAULT_BUDGET_S):
    """The record (see the module's docstring) over the first LAYER_SAMPLES samples of `inputs`; never raises."""
    started = time.time()
    try:
        inputs = _first_samples(inputs)
        fused = run_signature(tf, np, signature, inputs)
        graph = _LayerGraph(tf, signature)
        with _RemapperOff(tf):
            tensors, complete = _record_tensors(tf, np, graph, inputs, started + budget_s)
    except Unsupported as why:
        return {"schema": LAYERS_SCHEMA, "status": "unsupported", "reason": str(why)}
    except Exception as error:  # noqa: BLE001 - whatever the private API raises: a reason, not a failed capture
        return {"schema": LAYERS_SCHEMA, "status": "unsupported",
                "reason": "the layer pass failed: %s: %s" % (type(error).__name__, first_line(error))}
    by_key = {entry["key"]: entry for entry in tensors}
    outputs, equal = {}, {}
    for name, key in graph.output_keys.items():
        if key in by_key and name in fused:
            outputs[name] = key
            equal[name] = by_key[key]["sha256"] == _digest(np, np.asarray(fused[name]))
    return {"schema": LAYERS_SCHEMA, "status": "ok", "mode": MODE, "samples": sample_count(inputs),
            "complete": complete, "tensors": tensors, "outputs": outputs, "unfused_equals_fused": equal,
            "seconds": round(time.time() - started, 3)}


def _first_samples(inputs):
    rows = sample_count(inputs)
    if rows is None:
        return inputs
    return {name: value[:LAYER_SAMPLES] for name, value in inputs.items()}


class _LayerGraph:
    """The signature inlined into one graph, its variables bound, and the float tensors it computes."""

    def __init__(self, tf, signature):
        graph_def = _inline(signature)
        function_graph = signature.graph
        captured = {internal.name: external for external, internal in function_graph.captures}
        self.feed_names = [t.name for t in function_graph.inputs if t.name not in captured]
        specs = signature.structured_input_signature[1]
        self.feed_inputs = []
        for feed in self.feed_names:
            name = _input_name(feed, specs)
            if name is None:
                raise Unsupported("the signature's input %s has no name in its input signature" % feed)
            self.feed_inputs.append(name)

        def imported():
            here = tf.compat.v1.get_default_graph()
            tf.graph_util.import_graph_def(graph_def, name="",
                                           input_map={name: here.capture(value) for name, value in captured.items()})

        self.wrapped = tf.compat.v1.wrap_function(imported, [])
        graph = self.wrapped.graph
        self.feeds = [graph.get_tensor_by_name(name) for name in self.feed_names]
        self.tensors = [t for op in _topological(graph.get_operations()) if _computes(op)
                        for t in op.outputs if t.dtype.name in _FLOAT_TYPES]
        if not self.tensors:
            raise Unsupported("the inlined graph computes no float tensor outside function calls")
        self.keys = _unique_keys(self.tensors)
        structured = signature.structured_outputs
        self.output_keys = {}
        for name, produced in zip(sorted(structured), _output_tensors(function_graph, structured, graph)):
            source = _producer(produced)
            if source is not None and source.name in self.keys:
                self.output_keys[name] = self.keys[source.name]

    def key_of(self, tensor):
        source = _producer(tensor)
        return None if source is None else self.keys.get(source.name)

    def fetch(self, tf, inputs, tensors):
        pruned = self.wrapped.prune(self.feeds, tensors)
        return pruned(*[tf.constant(inputs[name]) for name in self.feed_inputs])


def _inline(signature):
    """The serving function with its calls inlined (a GraphDef): TensorFlow's private inliner, whose
    signature changed across releases, so it is looked up and called the ways it has been spelled."""
    try:
        from tensorflow.python.framework import convert_to_constants
        inline = convert_to_constants._run_inline_graph_optimization
    except (ImportError, AttributeError):
        raise Unsupported("this TensorFlow has no graph inliner "
                          "(convert_to_constants._run_inline_graph_optimization)") from None
    for call in (lambda: inline(signature, lower_control_flow=False, aggressive_inlining=True),
                 lambda: inline(signature, False, True), lambda: inline(signature, False)):
        try:
            return call()
        except TypeError:
            continue
    raise Unsupported("this TensorFlow's graph inliner takes arguments envcheck does not know")


def _input_name(feed, specs):
    op_name = feed.split(":")[0]
    for name, spec in specs.items():
        if name == op_name or getattr(spec, "name", None) == op_name:
            return name
    return None


def _output_tensors(function_graph, structured, graph):
    """The wrapped graph's tensors that the signature returns, in the order of its sorted output names."""
    flat = [t.name for t in function_graph.outputs]
    if len(flat) != len(structured):
        return []
    # The function's flat outputs follow its structured outputs' sorted keys (a dict is flattened sorted).
    return [graph.get_tensor_by_name(name) for name in flat]


def _computes(op):
    return op.type not in _NOT_COMPUTED and not op.name.startswith("Func/")


def _producer(tensor):
    """The tensor that really computed `tensor`, through identities and the inliner's Func/ nodes; None when it
    is a feed, a constant or a variable."""
    seen = 0
    while tensor.op.type in _PASS_THROUGH or tensor.op.name.startswith("Func/"):
        if not tensor.op.inputs or seen > 1000:
            return None
        index = tensor.value_index if tensor.op.type == "IdentityN" else 0
        tensor = tensor.op.inputs[index]
        seen += 1
    return tensor if _computes(tensor.op) else None


def _topological(operations):
    """The operations in topological order, ties kept in graph order (Kahn's algorithm)."""
    position = {op.name: i for i, op in enumerate(operations)}
    waiting = {op.name: len({t.op.name for t in op.inputs} | {c.name for c in op.control_inputs}) for op in operations}
    users = {op.name: [] for op in operations}
    for op in operations:
        for before in {t.op.name for t in op.inputs} | {c.name for c in op.control_inputs}:
            users[before].append(op)
    ready = [(position[op.name], op) for op in operations if waiting[op.name] == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        _, op = heapq.heappop(ready)
        ordered.append(op)
        for user in users[op.name]:
            waiting[user.name] -= 1
            if waiting[user.name] == 0:
                heapq.heappush(ready, (position[user.name], user))
    return ordered


def _unique_keys(tensors):
    """Tensor name -> record key: the op's name without call prefixes, `:index`; the full name on a clash."""
    keys, taken = {}, set()
    for tensor in tensors:
        key = "%s:%d" % (_CALL_PREFIX.sub("", tensor.op.name), tensor.value_index)
        if key in taken:
            key = tensor.name
        taken.add(key)
        keys[tensor.name] = key
    return keys


def _record_tensors(tf, np, graph, inputs, deadline):
    """Every tensor's summary in topological order, fetched in groups of at most MAX_FETCH_BYTES; (records,
    complete) where complete is False when the deadline stopped it."""
    records = []
    for group in _groups(graph.tensors, sample_count(inputs) or 1):
        if records and time.time() > deadline:
            return records, False
        values = graph.fetch(tf, inputs, group)
        for tensor, value in zip(group, values):
            records.append(_summary(np, graph, tensor, np.asarray(value)))
    return records, True


def _groups(tensors, samples):
    group, size = [], 0
    for tensor in tensors:
        dims = tensor.shape.as_list() if tensor.shape.rank is not None else [samples]
        count = 1
        for i, dim in enumerate(dims):
            count *= dim if dim is not None else (samples if i == 0 else 64)
        bytes_ = count * tensor.dtype.size
        if group and size + bytes_ > MAX_FETCH_BYTES:
            yield group
            group, size = [], 0
        group.append(tensor)
        size += bytes_
    if group:
        yield group


def _summary(np, graph, tensor, value):
    values = value if value.dtype.kind == "f" else _bfloat16_values(np, value)
    finite_mask = np.isfinite(values)
    # Statistics in the tensor's own type (no float64 copy of a large activation), accumulated in float64.
    finite = values.reshape(-1) if finite_mask.all() else values[finite_mask]
    flat = np.ascontiguousarray(value).reshape(-1)
    indices = sample_indices(np, flat.size)
    inputs = [graph.key_of(t) for t in tensor.op.inputs if t.dtype.name in _FLOAT_TYPES]
    return {
        "key": graph.keys[tensor.name],
        "op": tensor.op.type,
        "dtype": tensor.dtype.name,
        "shape": list(value.shape),
        "sha256": _digest(np, value),
        "nonfinite": int(values.size - finite.size),
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "mean": float(finite.mean(dtype=np.float64)) if finite.size else None,
        "std": float(finite.std(dtype=np.float64)) if finite.size else None,
        "sample": base64.b64encode(flat[indices].astype(flat.dtype.newbyteorder("<")).tobytes()).decode("ascii"),
        "inputs": sorted({key for key in inputs if key is not None}),
        # Computed inputs whose values are not recorded (a TensorList from a loop): this op's divergence
        # cannot be told from its inputs', so it is never named an origin.
        "opaque_inputs": sum(1 for t in tensor.op.inputs if t.dtype.name == "variant"),
    }


def sample_indices(np, size):
    """The flat indices of the kept elements: SAMPLE_ELEMENTS spread evenly, the same for every environment."""
    if size <= SAMPLE_ELEMENTS:
        return np.arange(size)
    return np.unique(np.linspace(0, size - 1, SAMPLE_ELEMENTS).round().astype(np.int64))


def _bfloat16_values(np, value):
    bits = np.ascontiguousarray(value).view(np.uint16).astype(np.uint32) << 16
    return bits.view(np.float32)


def _digest(np, value):
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


class _RemapperOff:
    """Grappler's remapper off for the layer pass, put back as it was afterwards."""

    def __init__(self, tf):
        self.tf = tf
        self.before = None

    def __enter__(self):
        self.before = self.tf.config.optimizer.get_experimental_options()
        self.tf.config.optimizer.set_experimental_options({"remapping": False})

    def __exit__(self, *_):
        self.tf.config.optimizer.set_experimental_options({"remapping": self.before.get("remapping", True)})
        return False
