"""The golden inputs, read a batch at a time: each array of inputs.npz is a .npy member of a zip, and its
rows are read from the member's stream as they are needed, so a set of 10,000 samples never sits in
memory whole. Never unpickles."""
import zipfile

from .errors import ProbeFailure, first_line


class InputSet:
    """inputs.npz opened for streaming: `rows` samples of every input, read in order by `batches`."""

    def __init__(self, np, path, limit=None):
        self.np, self.path = np, path
        self.specs = {}  # name -> (dtype, shape)
        try:
            with zipfile.ZipFile(path) as archive:
                for member in sorted(archive.namelist()):
                    if not member.endswith(".npy"):
                        raise ProbeFailure("inputs", "inputs.npz holds %r, which is no .npy array" % member)
                    with archive.open(member) as stream:
                        self.specs[member[:-4]] = _header(np, stream, member)
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise ProbeFailure("inputs", "cannot read inputs.npz: %s" % first_line(error)) from error
        counts = {name: shape[0] if shape else None for name, (_, shape) in self.specs.items()}
        if not counts:
            raise ProbeFailure("inputs", "inputs.npz holds no arrays")
        # Inputs without one shared leading dimension (a lookup table beside the samples, a scalar) have no
        # samples to cut into batches: such a set only runs whole.
        shared = set(counts.values())
        self.rows = shared.pop() if len(shared) == 1 and None not in shared else None
        if limit is not None and self.rows is not None:
            self.rows = min(self.rows, limit)

    def in_one_call(self, batch_size):
        """Whether the set runs as one call: no batch size (a golden from before batching), a set no larger
        than one batch, or inputs that share no sample count."""
        return batch_size is None or self.rows is None or self.rows <= batch_size

    def batches(self, batch_size, limit=None):
        """Dicts of arrays of up to `batch_size` rows each, in order, over the first `limit` rows (all: None);
        only for a set with a sample count."""
        total = self.rows if limit is None else min(limit, self.rows)
        with zipfile.ZipFile(self.path) as archive:
            streams = {name: archive.open(name + ".npy") for name in self.specs}
            try:
                for stream in streams.values():
                    self._skip_header(stream)
                done = 0
                while done < total:
                    count = min(batch_size, total - done)
                    yield {name: self._read_rows(stream, name, count) for name, stream in streams.items()}
                    done += count
            finally:
                for stream in streams.values():
                    stream.close()

    def first(self, batch_size):
        """The first batch: the whole set when it runs in one call."""
        if self.in_one_call(batch_size):
            return self.whole()
        return next(self.batches(batch_size, limit=batch_size))

    def whole(self):
        """Every row of every input at once (a set that runs in one call)."""
        with zipfile.ZipFile(self.path) as archive:
            arrays = {}
            for name in self.specs:
                with archive.open(name + ".npy") as stream:
                    self._skip_header(stream)
                    dtype, shape = self.specs[name]
                    # (a set with a sample count may be limited to its first rows: --max-samples)
                    wanted = shape if self.rows is None else (self.rows,) + tuple(shape[1:])
                    arrays[name] = self._read(stream, name, dtype, wanted)
            return arrays

    def _skip_header(self, stream):
        _header(self.np, stream, "")

    def _read_rows(self, stream, name, count):
        dtype, shape = self.specs[name]
        return self._read(stream, name, dtype, (count,) + tuple(shape[1:]))

    def _read(self, stream, name, dtype, shape):
        np = self.np
        size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        data = stream.read(size)
        if len(data) != size:
            raise ProbeFailure("inputs", "inputs.npz: %s is shorter than its header says" % name)
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _header(np, stream, member):
    """(dtype, shape) of a .npy stream, positioned after its header; object arrays and Fortran order refused."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ProbeFailure("inputs", "inputs.npz: %s is a .npy of version %d.%d; save it with NumPy's np.savez"
                           % ((member,) + version))
    if dtype.hasobject:
        raise ProbeFailure("inputs", "inputs.npz: %s holds Python objects, which are never unpickled" % member)
    if fortran and len(shape) > 1:
        raise ProbeFailure("inputs", "inputs.npz: %s is in Fortran order; save it C-contiguous" % member)
    return dtype, tuple(shape)


def sample_count(inputs):
    """The inputs' shared leading dimension; None when they share none (a scalar, a table beside the samples)."""
    counts = {len(value) if getattr(value, "ndim", 0) else None for value in inputs.values()}
    return counts.pop() if len(counts) == 1 else None
