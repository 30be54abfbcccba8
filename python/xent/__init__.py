"""xent from Python: softmax cross-entropy loss and gradient on the CPU.

Pure ctypes over the C library (``libxent.so``), standard library only at
import. Arrays are anything with the buffer protocol: NumPy arrays (any row
stride, via ``__array_interface__``), ``array.array``, ``bytearray``... A
two-dimensional NumPy array gives its own shape; a flat buffer needs
``classes=``. Outputs are NumPy arrays when the logits are one, otherwise
``array.array``.

The library is found at ``$XENT_LIBRARY``, then next to this file (where
``pip install`` puts it), then in the release directory of the source tree
this package sits in (``$CARGO_TARGET_DIR/release``, else ``target/release``:
``make build`` puts it there).

Semantics are PyTorch's ``F.cross_entropy`` (see the README's table of
options); every failure raises :class:`XentError` with the C status and
``xent_last_error()``'s message, and nothing is written on failure.
"""

import array
import ctypes
import os
import sys

__all__ = [
    "XentError",
    "cross_entropy",
    "cross_entropy_forward_backward",
    "cross_entropy_backward",
    "linear_cross_entropy",
    "linear_cross_entropy_forward_backward",
    "shard_stats",
    "shard_stats_merge",
    "shard_loss",
    "shard_backward",
    "version",
    "active_isa",
    "library_path",
]

_c = ctypes
_f32p = _c.POINTER(_c.c_float)
_size = _c.c_size_t
_vp = _c.c_void_p


class XentError(Exception):
    """A call the C library refused: ``status`` (int), ``status_name`` and
    ``message`` (``xent_last_error()``)."""

    def __init__(self, status, status_name, message):
        super().__init__(f"{status_name}: {message}")
        self.status = status
        self.status_name = status_name
        self.message = message


class _Options(_c.Structure):
    _fields_ = [
        ("struct_size", _size),
        ("reduction", _c.c_uint32),
        ("ignore_index", _c.c_int32),
        ("class_weights", _f32p),
        ("label_smoothing", _c.c_float),
        ("z_loss_scale", _c.c_float),
        ("logit_softcap", _c.c_float),
        ("num_threads", _c.c_uint32),
        ("parallel_for", _vp),
        ("parallel_ctx", _vp),
        ("grad_scale", _c.c_float),
        ("grad_accumulate", _c.c_uint32),
        ("grad_zero_padding", _c.c_uint32),
    ]


def _names(platform=None):
    platform = platform or sys.platform
    if platform == "darwin":
        return ["libxent.dylib"]
    if platform == "win32":
        return ["xent.dll"]
    return ["libxent.so"]


def _find_library(environ=None, here=None, platform=None):
    """The library's path (see the module's docstring for the order); the
    arguments stand in for os.environ, this file's directory and
    sys.platform in the tests."""
    environ = os.environ if environ is None else environ
    env = environ.get("XENT_LIBRARY")
    if env:
        return env
    here = here or os.path.dirname(os.path.abspath(__file__))
    tree = os.path.join(here, "..", "..")
    target = environ.get("CARGO_TARGET_DIR") or "target"
    for d in (here, os.path.join(tree, target, "release")):
        for n in _names(platform):
            p = os.path.normpath(os.path.join(d, n))
            if os.path.exists(p):
                return p
    raise OSError(
        "libxent not found: set XENT_LIBRARY, put the library next to xent/__init__.py, "
        "or build it with `make build` in the source tree (or `pip install` it)"
    )


library_path = _find_library()
_lib = _c.CDLL(library_path)

_P = _vp  # every array argument is passed as an address
_sig = {
    "xent_forward": [_P, _size, _size, _size, _P, _P, _P, _P, _P],
    "xent_backward": [_P, _size, _size, _size, _P, _P, _P, _P, _P, _size],
    "xent_forward_backward": [_P, _size, _size, _size, _P, _P, _P, _P, _P, _P, _size],
    "xent_soft_forward": [_P, _size, _size, _size, _P, _size, _P, _P, _P, _P],
    "xent_soft_backward": [_P, _size, _size, _size, _P, _size, _P, _P, _P, _P, _size],
    "xent_soft_forward_backward": [_P, _size, _size, _size, _P, _size, _P, _P, _P, _P, _P, _size],
    "xent_forward_bf16": [_P, _size, _size, _size, _P, _P, _P, _P, _P],
    "xent_forward_f16": [_P, _size, _size, _size, _P, _P, _P, _P, _P],
    "xent_forward_backward_bf16": [_P, _size, _size, _size, _P, _P, _P, _P, _P, _P, _size],
    "xent_forward_backward_f16": [_P, _size, _size, _size, _P, _P, _P, _P, _P, _P, _size],
    "xent_linear_forward": [_P, _size, _size, _size, _P, _size, _size, _P, _P, _P, _P, _P, _P, _P, _size],
    "xent_linear_forward_backward": [
        _P, _size, _size, _size, _P, _size, _size, _P, _P, _P, _P, _P, _P,
        _P, _size, _P, _size, _P, _P, _size,
    ],
    "xent_shard_stats": [_P, _size, _size, _size, _size, _size, _P, _P, _P],
    "xent_shard_loss": [_P, _size, _size, _P, _P, _P, _P],
    "xent_shard_backward": [_P, _size, _size, _size, _size, _size, _P, _P, _P, _P, _P, _size],
}
for _name, _args in _sig.items():
    _fn = getattr(_lib, _name)
    _fn.argtypes = _args
    _fn.restype = _c.c_uint32
_lib.xent_shard_stats_merge.argtypes = [_P, _P, _size]
_lib.xent_shard_stats_merge.restype = None
_lib.xent_options_default.restype = _Options
_lib.xent_options_default.argtypes = []
for _name in ("xent_version", "xent_last_error", "xent_active_isa"):
    getattr(_lib, _name).restype = _c.c_char_p
    getattr(_lib, _name).argtypes = []
_lib.xent_status_message.restype = _c.c_char_p
_lib.xent_status_message.argtypes = [_c.c_uint32]


def version():
    """The library's version, "MAJOR.MINOR.PATCH"."""
    return _lib.xent_version().decode()


def active_isa():
    """The kernel path in use: "scalar", "neon", "simd128", "avx2" or "avx512"."""
    return _lib.xent_active_isa().decode()


def _check(status):
    if status != 0:
        raise XentError(status, _lib.xent_status_message(status).decode(), _lib.xent_last_error().decode())


# ---- arrays ----

_ITEMSIZE = {"f4": 4, "i4": 4, "u2": 2, "f2": 2}


def _kind(fmt, itemsize):
    """The element kind of a buffer format: f4, i4, u2, f2 (or None)."""
    fmt = fmt.lstrip("@=" + ("<" if sys.byteorder == "little" else ">"))
    if fmt == "f" and itemsize == 4:
        return "f4"
    if fmt in ("i", "l") and itemsize == 4:
        return "i4"
    if fmt == "H" and itemsize == 2:
        return "u2"
    if fmt == "e" and itemsize == 2:
        return "f2"
    return None


_NUMPY_KIND = {"<f4": "f4", "<i4": "i4", "<u2": "u2", "<f2": "f2"}


class _Array:
    """A buffer seen as `rows x cols` elements of one kind at a row stride
    (in elements), with its address; keeps what it borrows alive."""

    def __init__(self, obj, name, kinds, cols=None, writable=False):
        self.obj = obj
        self.name = name
        iface = getattr(obj, "__array_interface__", None)
        if iface is not None:
            self._from_interface(iface, kinds, cols, writable)
        else:
            self._from_buffer(kinds, cols, writable)

    def _from_interface(self, iface, kinds, cols, writable):
        typestr = iface["typestr"]
        kind = _NUMPY_KIND.get(typestr.replace(">", "<") if sys.byteorder == "big" else typestr)
        if kind not in kinds:
            raise TypeError(f"{self.name}: dtype {typestr} is not one of {_describe(kinds)}")
        addr, readonly = iface["data"]
        if writable and readonly:
            raise ValueError(f"{self.name}: the array is read-only")
        shape = tuple(iface["shape"])
        size = _ITEMSIZE[kind]
        strides = iface.get("strides") or _c_strides(shape, size)
        if len(shape) == 2:
            rows, c = shape
            if cols is not None and c != cols:
                raise ValueError(f"{self.name}: has {c} columns, expected {cols}")
            rs, cs = strides
            if c > 1 and cs != size:
                raise ValueError(f"{self.name}: the elements of a row must be contiguous")
            if rows > 1 and (rs < 0 or rs % size):
                raise ValueError(f"{self.name}: row stride of {rs} bytes is negative or not whole elements")
            stride = rs // size if rows > 1 else max(c, 1)
        elif len(shape) == 1:
            n = shape[0]
            if n > 1 and strides[0] != size:
                raise ValueError(f"{self.name}: a 1-D array must be contiguous")
            rows, c, stride = self._flat(n, cols)
        else:
            raise ValueError(f"{self.name}: expected a 1-D or 2-D array, got {len(shape)} dimensions")
        self.kind, self.rows, self.cols, self.stride, self.addr = kind, rows, c, stride, addr
        # Outputs are NumPy arrays only for NumPy inputs (other objects with
        # an array interface, such as the torch wrapper's views, get array.array).
        self.numpy = type(self.obj).__module__ == "numpy"

    def _from_buffer(self, kinds, cols, writable):
        try:
            mv = memoryview(self.obj)
        except TypeError:
            raise TypeError(f"{self.name}: expected an array or a buffer, got {type(self.obj).__name__}") from None
        kind = _kind(mv.format, mv.itemsize)
        if kind not in kinds:
            raise TypeError(f"{self.name}: buffer format {mv.format!r} is not one of {_describe(kinds)}")
        if not mv.c_contiguous:
            raise ValueError(f"{self.name}: a buffer must be C-contiguous (NumPy arrays may be strided)")
        if writable and mv.readonly:
            raise ValueError(f"{self.name}: the buffer is read-only")
        n = mv.nbytes // mv.itemsize
        if mv.ndim == 2:
            rows, c = mv.shape
            if cols is not None and c != cols:
                raise ValueError(f"{self.name}: has {c} columns, expected {cols}")
            stride = c
        else:
            rows, c, stride = self._flat(n, cols)
        if mv.readonly:
            # ctypes needs a writable buffer for an address: inputs that are
            # read-only (bytes, say) are copied.
            self._keep = (_c.c_char * mv.nbytes).from_buffer_copy(mv)
        elif mv.nbytes:
            self._keep = (_c.c_char * mv.nbytes).from_buffer(mv.cast("B"))
        else:
            self._keep = None
        self._mv = mv
        addr = _c.addressof(self._keep) if self._keep is not None else 0
        self.kind, self.rows, self.cols, self.stride, self.addr = kind, rows, c, stride, addr
        self.numpy = False

    def _flat(self, n, cols):
        if cols is None:
            return 1, n, max(n, 1)
        if cols <= 0 or n % cols:
            raise ValueError(f"{self.name}: {n} values are not whole rows of {cols}")
        return n // cols, cols, cols

    def need(self, rows, cols=None):
        """Raises unless the array is `rows` x `cols` (or `rows` values)."""
        if cols is None:
            if self.rows * self.cols != rows or (self.rows > 1 and self.cols > 1):
                raise ValueError(f"{self.name}: expected {rows} values, got {self.rows}x{self.cols}")
        elif (self.rows, self.cols) != (rows, cols):
            raise ValueError(f"{self.name}: expected {rows}x{cols}, got {self.rows}x{self.cols}")
        return self


def _c_strides(shape, size):
    strides, s = [], size
    for d in reversed(shape):
        strides.append(s)
        s *= d
    return tuple(reversed(strides))


def _describe(kinds):
    names = {"f4": "float32", "i4": "int32", "u2": "uint16", "f2": "float16"}
    return ", ".join(names[k] for k in kinds)


def _new(like_numpy, kind, rows, cols=None):
    """A zeroed output: NumPy when the logits were NumPy, else array.array."""
    n = rows * (cols or 1)
    if like_numpy:
        import numpy

        dt = {"f4": numpy.float32, "i4": numpy.int32, "u2": numpy.uint16, "f2": numpy.float16}[kind]
        return numpy.zeros((rows, cols) if cols else (rows,), dtype=dt)
    code = {"f4": "f", "i4": "i", "u2": "H", "f2": "H"}[kind]
    return array.array(code, bytes(n * _ITEMSIZE[kind]))


def _addr(out):
    return _Array(out, "output", ("f4", "i4", "u2", "f2"), writable=True).addr if out is not None else None


# ---- options ----

_REDUCTIONS = {"mean": 0, "sum": 1, "none": 2}


class _Opts:
    def __init__(self, classes, reduction, ignore_index, weight, label_smoothing, z_loss_scale, softcap, num_threads):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        o = _lib.xent_options_default()
        o.reduction = _REDUCTIONS[reduction]
        o.ignore_index = _int32(ignore_index, "ignore_index")
        self.weight = None
        if weight is not None:
            self.weight = _Array(_float32_weights(weight), "weight", ("f4",)).need(classes)
            o.class_weights = _c.cast(self.weight.addr, _f32p)
        o.label_smoothing = float(label_smoothing)
        o.z_loss_scale = float(z_loss_scale)
        o.logit_softcap = float(softcap)
        if not 0 <= int(num_threads) < 2**32:
            raise ValueError(f"num_threads must be in [0, 2^32), got {num_threads}")
        o.num_threads = int(num_threads)
        self.c = o
        self.reduction = reduction

    @property
    def ref(self):
        return _c.byref(self.c)


def _int32(v, name):
    v = int(v)
    if not -(2**31) <= v < 2**31:
        raise ValueError(f"{name} must fit in int32, got {v}")
    return v


def _loss_value(loss, reduction):
    return loss if reduction == "none" else float(loss[0])


def _logits(logits, classes, half):
    kinds = ("f4", "u2", "f2")
    x = _Array(logits, "logits", kinds, cols=classes)
    if x.kind == "u2" and half not in ("bf16", "f16"):
        raise TypeError("logits: uint16 logits are raw 16-bit patterns: pass half='bf16' or half='f16'")
    if x.kind == "f2":
        if half not in (None, "f16"):
            raise TypeError("logits: float16 logits with half=" + repr(half))
        half = "f16"
    if x.kind == "f4" and half is not None:
        raise TypeError("logits: half= is only for uint16 / float16 logits")
    return x, half


def _target(target, x):
    """Class indices (int32, `rows`) or probabilities (float32, rows x classes).
    NumPy int64 indices (NumPy's default) are converted when they fit int32."""
    iface = getattr(target, "__array_interface__", None)
    if iface is not None and iface["typestr"] in ("<i8", "<u4", "<u8", "<i2", "<i1", "<u1", "<u2") and hasattr(target, "astype"):
        if target.size and (int(target.min()) < -(2**31) or int(target.max()) >= 2**31):
            raise ValueError("target: class indices do not fit int32")
        target = target.astype("int32")
    t = _Array(target, "target", ("i4", "f4"), cols=x.cols if _is_float(target) else None)
    if t.kind == "i4":
        return t.need(x.rows), False
    return t.need(x.rows, x.cols), True


def _float32_weights(weight):
    """Class weights as float32: NumPy arrays of float64 (NumPy's default),
    float16 or integers and ``array('d')`` buffers are converted (rounded to
    the nearest float32, as PyTorch does when it casts to the logits'
    dtype); float32 buffers are used in place."""
    iface = getattr(weight, "__array_interface__", None)
    if iface is not None:
        if iface["typestr"][1] in "fiu" and iface["typestr"] != "<f4" and hasattr(weight, "astype"):
            return weight.astype("float32")
        return weight
    if isinstance(weight, (list, tuple)):
        return array.array("f", weight)
    try:
        mv = memoryview(weight)
    except TypeError:
        return weight
    if mv.format.lstrip("@=<") == "d" and mv.ndim == 1:
        return array.array("f", mv.tolist())
    return weight


def _is_float(obj):
    iface = getattr(obj, "__array_interface__", None)
    if iface is not None:
        return iface["typestr"][1] == "f"
    try:
        return memoryview(obj).format.lstrip("@=<>") in ("f", "d")
    except TypeError:
        return False


def _forward_outputs(x, reduction, want_lse, want_argmax):
    loss = _new(x.numpy, "f4", x.rows if reduction == "none" else 1)
    lse = _new(x.numpy, "f4", x.rows) if want_lse else None
    argmax = _new(x.numpy, "i4", x.rows) if want_argmax else None
    return loss, lse, argmax


def _result(loss, lse, argmax, reduction, want_lse, want_argmax):
    value = _loss_value(loss, reduction)
    if want_lse or want_argmax:
        return value, lse, argmax
    return value


def cross_entropy(
    logits,
    target,
    *,
    reduction="mean",
    ignore_index=-100,
    weight=None,
    label_smoothing=0.0,
    z_loss_scale=0.0,
    softcap=0.0,
    num_threads=0,
    classes=None,
    half=None,
    return_lse=False,
    return_argmax=False,
):
    """The loss of `logits` (rows x classes) against `target`: int32 class
    indices (`rows`) or float32 probabilities (rows x classes), as PyTorch's
    ``F.cross_entropy``. Returns a float (a `rows` array for
    ``reduction='none'``); with `return_lse` / `return_argmax`, the tuple
    ``(loss, lse, argmax)`` (None for what was not asked). Logits may be
    float32, float16, or uint16 bit patterns with ``half='bf16'|'f16'``."""
    x, half = _logits(logits, classes, half)
    t, soft = _target(target, x)
    o = _Opts(x.cols, reduction, ignore_index, weight, label_smoothing, z_loss_scale, softcap, num_threads)
    loss, lse, argmax = _forward_outputs(x, reduction, return_lse, return_argmax)
    outs = (_addr(loss), _addr(lse), _addr(argmax))
    if soft:
        if half:
            raise TypeError("probability targets need float32 logits")
        _check(_lib.xent_soft_forward(x.addr, x.rows, x.cols, x.stride, t.addr, t.stride, o.ref, *outs))
    elif half:
        fn = _lib.xent_forward_bf16 if half == "bf16" else _lib.xent_forward_f16
        _check(fn(x.addr, x.rows, x.cols, x.stride, t.addr, o.ref, *outs))
    else:
        _check(_lib.xent_forward(x.addr, x.rows, x.cols, x.stride, t.addr, o.ref, *outs))
    return _result(loss, lse, argmax, reduction, return_lse, return_argmax)


def _grad_loss(grad_loss, n):
    """The upstream gradient as `n` float32 values: a number is repeated."""
    if isinstance(grad_loss, (int, float)):
        return _Array(array.array("f", [float(grad_loss)] * n), "grad_loss", ("f4",))
    return _Array(grad_loss, "grad_loss", ("f4",)).need(n)


def _grad_out(out, x, half):
    kind = "f4" if not half else ("f2" if x.kind == "f2" else "u2")
    if out is None:
        g = _new(x.numpy, kind, x.rows, x.cols)
        return g, _Array(g, "out", (kind,), cols=x.cols, writable=True)
    return out, _Array(out, "out", (kind,), cols=x.cols, writable=True).need(x.rows, x.cols)


def cross_entropy_forward_backward(
    logits,
    target,
    *,
    reduction="mean",
    ignore_index=-100,
    weight=None,
    label_smoothing=0.0,
    z_loss_scale=0.0,
    softcap=0.0,
    num_threads=0,
    classes=None,
    half=None,
    out=None,
    return_lse=False,
    return_argmax=False,
):
    """The training call: ``(loss, grad)``, the gradient of the reduced loss
    (for ``'none'``, of the sum of row losses) with respect to `logits`, in
    one pass. `out` receives the gradient (same shape and type as the
    logits; ``out=logits`` works in place); by default a new array. With
    `return_lse` / `return_argmax`: ``(loss, grad, lse, argmax)``."""
    x, half = _logits(logits, classes, half)
    t, soft = _target(target, x)
    o = _Opts(x.cols, reduction, ignore_index, weight, label_smoothing, z_loss_scale, softcap, num_threads)
    loss, lse, argmax = _forward_outputs(x, reduction, return_lse, return_argmax)
    grad, g = _grad_out(out, x, half)
    outs = (_addr(loss), _addr(lse), _addr(argmax))
    if soft:
        if half:
            raise TypeError("probability targets need float32 logits")
        _check(
            _lib.xent_soft_forward_backward(
                x.addr, x.rows, x.cols, x.stride, t.addr, t.stride, o.ref, *outs, g.addr, g.stride
            )
        )
    elif half:
        fn = _lib.xent_forward_backward_bf16 if half == "bf16" else _lib.xent_forward_backward_f16
        _check(fn(x.addr, x.rows, x.cols, x.stride, t.addr, o.ref, *outs, g.addr, g.stride))
    else:
        _check(_lib.xent_forward_backward(x.addr, x.rows, x.cols, x.stride, t.addr, o.ref, *outs, g.addr, g.stride))
    value = _loss_value(loss, reduction)
    if return_lse or return_argmax:
        return value, grad, lse, argmax
    return value, grad


def cross_entropy_backward(
    logits,
    target,
    grad_loss=1.0,
    *,
    lse=None,
    reduction="mean",
    ignore_index=-100,
    weight=None,
    label_smoothing=0.0,
    z_loss_scale=0.0,
    softcap=0.0,
    num_threads=0,
    classes=None,
    out=None,
):
    """The gradient with respect to float32 `logits` given the upstream
    gradient (a number, or `rows` values for ``'none'``) and optionally the
    forward's per-row `lse`."""
    x, half = _logits(logits, classes, None)
    t, soft = _target(target, x)
    o = _Opts(x.cols, reduction, ignore_index, weight, label_smoothing, z_loss_scale, softcap, num_threads)
    gl = _grad_loss(grad_loss, x.rows if reduction == "none" else 1)
    ls = _Array(lse, "lse", ("f4",)).need(x.rows) if lse is not None else None
    grad, g = _grad_out(out, x, None)
    lse_addr = ls.addr if ls is not None else None
    if soft:
        _check(
            _lib.xent_soft_backward(
                x.addr, x.rows, x.cols, x.stride, t.addr, t.stride, o.ref, gl.addr, lse_addr, g.addr, g.stride
            )
        )
    else:
        _check(_lib.xent_backward(x.addr, x.rows, x.cols, x.stride, t.addr, o.ref, gl.addr, lse_addr, g.addr, g.stride))
    return grad


def _linear_args(hidden, weight, labels, bias, dim):
    h = _Array(hidden, "hidden", ("f4",), cols=dim)
    w = _Array(weight, "weight", ("f4",), cols=h.cols)
    t = _Array(labels, "labels", ("i4",)).need(h.rows)
    b = _Array(bias, "bias", ("f4",)).need(w.rows) if bias is not None else None
    return h, w, t, b


def linear_cross_entropy(
    hidden,
    weight,
    labels,
    bias=None,
    *,
    reduction="mean",
    ignore_index=-100,
    class_weight=None,
    label_smoothing=0.0,
    z_loss_scale=0.0,
    softcap=0.0,
    num_threads=0,
    dim=None,
    return_lse=False,
    return_argmax=False,
):
    """The loss of ``hidden @ weight.T + bias`` (rows x dim, classes x dim)
    against int32 `labels`, a chunk of rows at a time: the logits never
    exist whole. `class_weight` is PyTorch's ``weight=``."""
    h, w, t, b = _linear_args(hidden, weight, labels, bias, dim)
    o = _Opts(w.rows, reduction, ignore_index, class_weight, label_smoothing, z_loss_scale, softcap, num_threads)
    loss, lse, argmax = _forward_outputs(h, reduction, return_lse, return_argmax)
    _check(
        _lib.xent_linear_forward(
            h.addr, h.rows, h.cols, h.stride, w.addr, w.rows, w.stride, b.addr if b else None, t.addr, o.ref,
            _addr(loss), _addr(lse), _addr(argmax), None, 0,
        )
    )
    return _result(loss, lse, argmax, reduction, return_lse, return_argmax)


def linear_cross_entropy_forward_backward(
    hidden,
    weight,
    labels,
    bias=None,
    *,
    reduction="mean",
    ignore_index=-100,
    class_weight=None,
    label_smoothing=0.0,
    z_loss_scale=0.0,
    softcap=0.0,
    num_threads=0,
    dim=None,
):
    """``(loss, grad_hidden, grad_weight, grad_bias)`` of
    :func:`linear_cross_entropy` (``grad_bias`` is None without a bias)."""
    h, w, t, b = _linear_args(hidden, weight, labels, bias, dim)
    o = _Opts(w.rows, reduction, ignore_index, class_weight, label_smoothing, z_loss_scale, softcap, num_threads)
    loss = _new(h.numpy, "f4", h.rows if reduction == "none" else 1)
    gh = _new(h.numpy, "f4", h.rows, h.cols)
    gw = _new(h.numpy, "f4", w.rows, w.cols)
    gb = _new(h.numpy, "f4", w.rows) if b is not None else None
    _check(
        _lib.xent_linear_forward_backward(
            h.addr, h.rows, h.cols, h.stride, w.addr, w.rows, w.stride, b.addr if b else None, t.addr, o.ref,
            _addr(loss), None, None, _addr(gh), h.cols, _addr(gw), w.cols, _addr(gb), None, 0,
        )
    )
    return _loss_value(loss, reduction), gh, gw, gb


# ---- vocabulary shards (one rank's slice of the classes) ----

#: Floats per row of shard statistics (XentShardStats).
SHARD_STATS_FIELDS = 5


def _stats(stats, rows, name, writable=False):
    """`rows` dense rows of shard statistics (`rows=None`: as many as there are)."""
    st = _Array(stats, name, ("f4",), cols=SHARD_STATS_FIELDS, writable=writable)
    if st.stride != SHARD_STATS_FIELDS:
        raise ValueError(f"{name}: shard statistics must be dense rows of 5 floats")
    return st.need(st.rows if rows is None else rows, SHARD_STATS_FIELDS)


def shard_stats(
    logits, labels, class_offset, total_classes, *, reduction="mean", ignore_index=-100, weight=None,
    label_smoothing=0.0, z_loss_scale=0.0, softcap=0.0, num_threads=0, classes=None,
):
    """Per-row statistics (rows x 5 float32) of a shard holding classes
    ``[class_offset, class_offset + shard_classes)`` of every row. `labels`
    and `weight` (`total_classes` values) are global. Merge every rank's
    with :func:`shard_stats_merge`, then :func:`shard_loss` /
    :func:`shard_backward`."""
    x = _Array(logits, "logits", ("f4",), cols=classes)
    t = _Array(labels, "labels", ("i4",)).need(x.rows)
    o = _Opts(total_classes, reduction, ignore_index, weight, label_smoothing, z_loss_scale, softcap, num_threads)
    out = _new(x.numpy, "f4", x.rows, SHARD_STATS_FIELDS)
    st = _stats(out, x.rows, "stats", writable=True)
    _check(_lib.xent_shard_stats(x.addr, x.rows, x.cols, x.stride, class_offset, total_classes, t.addr, o.ref, st.addr))
    return out


def shard_stats_merge(stats, into):
    """Merges `stats` into `into` (both rows x 5 float32, as from
    :func:`shard_stats`) and returns `into`."""
    a = _stats(stats, None, "stats")
    b = _stats(into, a.rows, "into", writable=True)
    _lib.xent_shard_stats_merge(a.addr, b.addr, a.rows)
    return into


def shard_loss(
    merged, labels, total_classes, *, reduction="mean", ignore_index=-100, weight=None, label_smoothing=0.0,
    z_loss_scale=0.0, softcap=0.0, return_lse=False,
):
    """The loss from merged statistics: a float (a `rows` array for
    ``'none'``), or ``(loss, lse)`` with `return_lse`."""
    t = _Array(labels, "labels", ("i4",))
    rows = t.rows * t.cols
    m = _stats(merged, rows, "merged")
    o = _Opts(total_classes, reduction, ignore_index, weight, label_smoothing, z_loss_scale, softcap, 0)
    loss = _new(m.numpy, "f4", rows if reduction == "none" else 1)
    lse = _new(m.numpy, "f4", rows) if return_lse else None
    _check(_lib.xent_shard_loss(m.addr, rows, total_classes, t.addr, o.ref, _addr(loss), _addr(lse)))
    value = _loss_value(loss, reduction)
    return (value, lse) if return_lse else value


def shard_backward(
    logits, labels, class_offset, total_classes, merged, grad_loss=1.0, *, reduction="mean", ignore_index=-100,
    weight=None, label_smoothing=0.0, z_loss_scale=0.0, softcap=0.0, num_threads=0, classes=None, out=None,
):
    """This shard's slice of the unsharded gradient, given the merged
    statistics and the upstream gradient (a number, or `rows` values for
    ``'none'``)."""
    x = _Array(logits, "logits", ("f4",), cols=classes)
    t = _Array(labels, "labels", ("i4",)).need(x.rows)
    m = _stats(merged, x.rows, "merged")
    o = _Opts(total_classes, reduction, ignore_index, weight, label_smoothing, z_loss_scale, softcap, num_threads)
    gl = _grad_loss(grad_loss, x.rows if reduction == "none" else 1)
    grad, g = _grad_out(out, x, None)
    _check(
        _lib.xent_shard_backward(
            x.addr, x.rows, x.cols, x.stride, class_offset, total_classes, t.addr, o.ref, m.addr, gl.addr,
            g.addr, g.stride,
        )
    )
    return grad
