"""PyTorch wrappers (imported only on request; needs torch 2.4 or later).

``xent.torch.cross_entropy`` is ``torch.nn.functional.cross_entropy`` with
its signature (positional order, defaults, the deprecated ``size_average``
and ``reduce``), for CPU tensors, plus xent's options as keywords, so a
training loop swaps one line. The calls are ``torch.library`` custom ops
with fake implementations and autograd formulas, so ``torch.compile`` traces
them without graph breaks; labels are checked inside the ops.

How the work splits: the forward computes the loss and each row's
log-sum-exp (one read of the logits); the backward computes the gradient
from the logits and that lse with the upstream gradient folded in (one read
and one write: no multiply afterwards, nothing computed when no gradient is
wanted). ``inplace_backward=True`` writes the gradient over the logits'
storage instead of a new tensor.
"""

import ctypes as _c
from typing import List, Optional, Tuple

import torch

import xent as _x

__all__ = ["cross_entropy", "linear_cross_entropy", "vocab_parallel_cross_entropy"]

_lib = _x._lib
_REDUCTIONS = {"mean": 0, "sum": 1, "none": 2}
_HALF = {torch.bfloat16: "bf16", torch.float16: "f16"}


def _ptr(t):
    return t.data_ptr() if t is not None and t.numel() else None


def _options(reduction, ignore_index, weight, label_smoothing, z_loss_scale, softcap, num_threads):
    o = _lib.xent_options_default()
    o.reduction = reduction
    o.ignore_index = ignore_index
    if weight is not None:
        o.class_weights = _c.cast(weight.data_ptr(), _x._f32p)
    o.label_smoothing = label_smoothing
    o.z_loss_scale = z_loss_scale
    o.logit_softcap = softcap
    o.num_threads = _resolve(num_threads)
    return o


def _labels(target, classes_hint=None):
    """Class indices as contiguous int32; values beyond int32 are refused,
    not wrapped into a valid class (the library checks the range)."""
    if target.dtype == torch.int32:
        return target.contiguous()
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target: class indices must be integers, got {target.dtype}")
    if target.numel() and (int(target.min()) < -(2**31) or int(target.max()) >= 2**31):
        raise ValueError("target: class indices do not fit int32")
    return target.to(torch.int32).contiguous()


def _weight(weight):
    return None if weight is None else weight.detach().to(torch.float32).contiguous()


def _check_rows(logits):
    if logits.dim() != 2 or (logits.shape[1] > 1 and logits.stride(1) != 1):
        raise ValueError("xent: logits must be rows x classes with contiguous rows")


# ---- the custom ops ----


@torch.library.custom_op("xent::cross_entropy_forward", mutates_args=())
def _forward(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    ignore_index: int,
    reduction: int,
    label_smoothing: float,
    z_loss_scale: float,
    softcap: float,
    num_threads: int,
    want_grad16: bool,
    inplace: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss, per-row lse, and (16-bit logits that need a gradient only) the
    16-bit gradient of the reduced loss, made in the same pass."""
    _check_rows(logits)
    rows, classes = logits.shape
    stride = logits.stride(0) if rows > 1 else classes
    loss = torch.empty((rows,) if reduction == 2 else (), dtype=torch.float32)
    lse = torch.empty((rows,), dtype=torch.float32)
    grad16 = torch.empty((0,), dtype=logits.dtype)
    w = _weight(weight)
    o = _options(reduction, ignore_index, w, label_smoothing, z_loss_scale, softcap, num_threads)
    if target.is_floating_point():
        if logits.dtype != torch.float32:
            raise TypeError("xent: probability targets need float32 logits")
        t = target.to(torch.float32).contiguous()
        status = _lib.xent_soft_forward(
            _ptr(logits), rows, classes, stride, _ptr(t), classes, _c.byref(o), _ptr(loss), _ptr(lse), None
        )
    elif logits.dtype == torch.float32:
        t = _labels(target)
        status = _lib.xent_forward(_ptr(logits), rows, classes, stride, _ptr(t), _c.byref(o), _ptr(loss), _ptr(lse), None)
    else:
        t = _labels(target)
        name = _HALF[logits.dtype]
        if want_grad16:
            # No 16-bit backward call: the fused call makes the gradient now.
            grad16 = torch.empty_like(logits, memory_format=torch.contiguous_format)
            status = getattr(_lib, f"xent_forward_backward_{name}")(
                _ptr(logits), rows, classes, stride, _ptr(t), _c.byref(o), _ptr(loss), _ptr(lse), None,
                _ptr(grad16), classes,
            )
        else:
            status = getattr(_lib, f"xent_forward_{name}")(
                _ptr(logits), rows, classes, stride, _ptr(t), _c.byref(o), _ptr(loss), _ptr(lse), None
            )
    _x._check(status)
    return loss, lse, grad16


@_forward.register_fake
def _(logits, target, weight, ignore_index, reduction, label_smoothing, z_loss_scale, softcap, num_threads, want_grad16, inplace):
    rows = logits.shape[0]
    loss = logits.new_empty((rows,) if reduction == 2 else (), dtype=torch.float32)
    lse = logits.new_empty((rows,), dtype=torch.float32)
    if want_grad16 and logits.dtype != torch.float32:
        return loss, lse, torch.empty_like(logits, memory_format=torch.contiguous_format)
    return loss, lse, logits.new_empty((0,))


def _backward_call(logits, target, weight, grad_loss, lse, grad, opts):
    rows, classes = logits.shape
    stride = logits.stride(0) if rows > 1 else classes
    gstride = grad.stride(0) if rows > 1 else classes
    reduction, ignore_index, label_smoothing, z_loss_scale, softcap, num_threads = opts
    w = _weight(weight)
    o = _options(reduction, ignore_index, w, label_smoothing, z_loss_scale, softcap, num_threads)
    g = grad_loss.detach().to(torch.float32).contiguous()
    lse = lse.contiguous()
    if target.is_floating_point():
        t = target.to(torch.float32).contiguous()
        status = _lib.xent_soft_backward(
            _ptr(logits), rows, classes, stride, _ptr(t), classes, _c.byref(o), _ptr(g), _ptr(lse), _ptr(grad), gstride
        )
    else:
        t = _labels(target)
        status = _lib.xent_backward(
            _ptr(logits), rows, classes, stride, _ptr(t), _c.byref(o), _ptr(g), _ptr(lse), _ptr(grad), gstride
        )
    _x._check(status)


@torch.library.custom_op("xent::cross_entropy_backward", mutates_args=())
def _backward(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    grad_loss: torch.Tensor,
    lse: torch.Tensor,
    ignore_index: int,
    reduction: int,
    label_smoothing: float,
    z_loss_scale: float,
    softcap: float,
    num_threads: int,
) -> torch.Tensor:
    """The gradient into a new tensor, `grad_loss` folded in."""
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
    opts = (reduction, ignore_index, label_smoothing, z_loss_scale, softcap, num_threads)
    _backward_call(logits, target, weight, grad_loss, lse, grad, opts)
    return grad


@_backward.register_fake
def _(logits, target, weight, grad_loss, lse, ignore_index, reduction, label_smoothing, z_loss_scale, softcap, num_threads):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


@torch.library.custom_op("xent::cross_entropy_backward_", mutates_args=("logits",))
def _backward_inplace(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    grad_loss: torch.Tensor,
    lse: torch.Tensor,
    ignore_index: int,
    reduction: int,
    label_smoothing: float,
    z_loss_scale: float,
    softcap: float,
    num_threads: int,
) -> None:
    """The gradient over the logits' storage (their version counter moves)."""
    opts = (reduction, ignore_index, label_smoothing, z_loss_scale, softcap, num_threads)
    _backward_call(logits, target, weight, grad_loss, lse, logits, opts)


@_backward_inplace.register_fake
def _(logits, target, weight, grad_loss, lse, ignore_index, reduction, label_smoothing, z_loss_scale, softcap, num_threads):
    return None


def _setup(ctx, inputs, output):
    logits, target, weight = inputs[0], inputs[1], inputs[2]
    ctx.opts = inputs[3:9]
    ctx.inplace = inputs[10]
    _, lse, grad16 = output
    ctx.half = logits.dtype != torch.float32
    ctx.save_for_backward(logits, target, weight, lse, grad16)
    ctx.set_materialize_grads(False)


def _grad(ctx, grad_loss, _grad_lse, _grad_grad16):
    logits, target, weight, lse, grad16 = ctx.saved_tensors
    ignore_index, reduction, label_smoothing, z_loss_scale, softcap, num_threads = ctx.opts
    args = (ignore_index, reduction, label_smoothing, z_loss_scale, softcap, num_threads)
    if ctx.half:
        # 16-bit: the forward made the gradient of the reduced loss.
        g = grad_loss.to(torch.float32)
        scale = g.reshape(-1, 1) if reduction == 2 else g
        grad = (grad16.to(torch.float32) * scale).to(logits.dtype)
    elif ctx.inplace:
        torch.ops.xent.cross_entropy_backward_(logits, target, weight, grad_loss, lse, *args)
        grad = logits
    else:
        grad = torch.ops.xent.cross_entropy_backward(logits, target, weight, grad_loss, lse, *args)
    return (grad,) + (None,) * 10


torch.library.register_autograd("xent::cross_entropy_forward", _grad, setup_context=_setup)


# ---- cross_entropy ----


def _reduction(size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        # As F.cross_entropy: the deprecated pair overrides `reduction`.
        return torch.nn._reduction.legacy_get_string(size_average, reduce)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _threads(num_threads):
    """The ops' thread count: -1 (the default) is ``torch.get_num_threads()``
    when the op runs (inside the op, so torch.compile traces no call)."""
    if num_threads is None:
        return -1
    n = int(num_threads)
    if not 0 <= n < 2**32:
        raise ValueError(f"num_threads must be in [0, 2^32), got {num_threads}")
    return n


def _resolve(num_threads):
    return torch.get_num_threads() if num_threads < 0 else num_threads


def _float64(input, target, weight, ignore_index, reduction, label_smoothing, z_loss_scale, softcap):
    """float64 logits: PyTorch's own float64 ops (F.cross_entropy, plus the
    softcap and z-loss written out), with xent's semantics."""
    z = softcap * torch.tanh(input / softcap) if softcap > 0 else input
    w = None if weight is None else weight.to(torch.float64)
    ce = torch.nn.functional.cross_entropy(
        z, target, w, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )
    if z_loss_scale == 0:
        return ce
    lse = torch.logsumexp(z, dim=1)
    kept = torch.ones_like(lse) if target.is_floating_point() else (target != ignore_index).to(torch.float64)
    zl = z_loss_scale * lse * lse * kept
    if reduction == "none":
        return ce + zl
    if reduction == "sum":
        return ce + zl.sum()
    return ce + zl.sum() / kept.sum()


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index=-100,
    reduce=None,
    reduction="mean",
    label_smoothing=0.0,
    *,
    z_loss_scale=0.0,
    softcap=0.0,
    num_threads=None,
    inplace_backward=False,
):
    """``F.cross_entropy`` on the CPU, with its signature and results.

    `input` is (N, C), (C,) or (N, C, d1, ..., dk): float32, bfloat16 or
    float16 (float64 delegates to PyTorch's own float64 ops); `target` holds
    class indices (any integer dtype) or probabilities of `input`'s shape.
    xent's extras, keyword-only: `z_loss_scale` (adds ``z_loss_scale·lse²``
    per kept row), `softcap` (``z → cap·tanh(z/cap)`` first), `num_threads`
    (default: ``torch.get_num_threads()``), and `inplace_backward`.

    ``inplace_backward=True`` writes the gradient over `input`'s storage
    during backward instead of allocating one (flash-attn's option): safe
    only when nothing reads `input` after the loss's backward, e.g. logits
    that only feed this loss. Autograd's version counter sees the write, so a
    tensor another op saved that shares `input`'s storage makes that op's
    backward raise instead of using the gradient as logits. (N-D inputs are
    made (rows, C) by a copy first, which then takes the write; 16-bit
    logits get their gradient in the forward pass, into a new tensor.)
    """
    reduction = _reduction(size_average, reduce, reduction)
    if input.device.type != "cpu":
        raise ValueError(f"input: xent runs on the CPU, got a tensor on {input.device}")
    if input.dtype == torch.float64:
        return _float64(input, target, weight, ignore_index, reduction, label_smoothing, z_loss_scale, softcap)
    if input.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise TypeError(f"input: dtype {input.dtype} is not supported (float32, bfloat16, float16, float64)")
    if input.dim() == 1:
        # Unbatched (C,) logits, as F.cross_entropy takes them.
        t = target.unsqueeze(0)
        out = cross_entropy(
            input.unsqueeze(0), t, weight, None, ignore_index, None, reduction, label_smoothing,
            z_loss_scale=z_loss_scale, softcap=softcap, num_threads=num_threads, inplace_backward=inplace_backward,
        )
        return out.squeeze(0) if reduction == "none" else out
    if input.dim() > 2:
        # (N, C, d1, ..., dk): classes last, one row per position.
        n, c = input.shape[0], input.shape[1]
        rows = input.movedim(1, -1).reshape(-1, c)
        t = target.movedim(1, -1).reshape(-1, c) if target.is_floating_point() else target.reshape(-1)
        out = cross_entropy(
            rows, t, weight, None, ignore_index, None, reduction, label_smoothing,
            z_loss_scale=z_loss_scale, softcap=softcap, num_threads=num_threads, inplace_backward=inplace_backward,
        )
        return out.reshape((n,) + tuple(input.shape[2:])) if reduction == "none" else out
    if input.dim() != 2:
        raise ValueError(f"input: expected 1 or more dimensions, got {input.dim()}")
    x = input if input.shape[1] <= 1 or input.stride(1) == 1 else input.contiguous()
    need_grad = torch.is_grad_enabled() and input.requires_grad
    loss, _, _ = torch.ops.xent.cross_entropy_forward(
        x,
        target,
        weight,
        int(ignore_index),
        _REDUCTIONS[reduction],
        float(label_smoothing),
        float(z_loss_scale),
        float(softcap),
        _threads(num_threads),
        need_grad and x.dtype != torch.float32,
        bool(inplace_backward),
    )
    # As F.cross_entropy: the loss in the logits' dtype.
    return loss if input.dtype == torch.float32 else loss.to(input.dtype)


# ---- fused linear + cross-entropy ----


@torch.library.custom_op("xent::linear_cross_entropy", mutates_args=())
def _linear(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: Optional[torch.Tensor],
    ignore_index: int,
    reduction: int,
    label_smoothing: float,
    z_loss_scale: float,
    softcap: float,
    num_threads: int,
    want_grads: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss and, when wanted, the gradients of the reduced loss for hidden,
    weight and bias (empty tensors otherwise), from one fused call."""
    h = hidden.to(torch.float32).contiguous()
    w = weight.to(torch.float32).contiguous()
    b = bias.to(torch.float32).contiguous() if bias is not None else None
    t = _labels(target)
    rows, dim = h.shape
    classes = w.shape[0]
    if w.dim() != 2 or w.shape[1] != dim:
        raise ValueError(f"weight: expected ({classes}, {dim}), got {tuple(w.shape)}")
    loss = torch.empty((rows,) if reduction == 2 else (), dtype=torch.float32)
    o = _options(reduction, ignore_index, None, label_smoothing, z_loss_scale, softcap, num_threads)
    empty = torch.empty((0,), dtype=torch.float32)
    if not want_grads:
        status = _lib.xent_linear_forward(
            _ptr(h), rows, dim, dim, _ptr(w), classes, dim, _ptr(b), _ptr(t), _c.byref(o), _ptr(loss), None, None, None, 0
        )
        _x._check(status)
        return loss, empty, empty.clone(), empty.clone()
    gh, gw = torch.empty_like(h), torch.empty_like(w)
    gb = torch.empty((classes,), dtype=torch.float32) if b is not None else empty
    status = _lib.xent_linear_forward_backward(
        _ptr(h), rows, dim, dim, _ptr(w), classes, dim, _ptr(b), _ptr(t), _c.byref(o), _ptr(loss), None, None,
        _ptr(gh), dim, _ptr(gw), dim, _ptr(gb) if b is not None else None, None, 0,
    )
    _x._check(status)
    return loss, gh, gw, gb


@_linear.register_fake
def _(hidden, weight, target, bias, ignore_index, reduction, label_smoothing, z_loss_scale, softcap, num_threads, want_grads):
    rows = hidden.shape[0]
    loss = hidden.new_empty((rows,) if reduction == 2 else (), dtype=torch.float32)
    if not want_grads:
        e = hidden.new_empty((0,), dtype=torch.float32)
        return loss, e, e.clone(), e.clone()
    gb = hidden.new_empty((weight.shape[0],) if bias is not None else (0,), dtype=torch.float32)
    return loss, torch.empty_like(hidden, dtype=torch.float32), torch.empty_like(weight, dtype=torch.float32), gb


def _linear_setup(ctx, inputs, output):
    ctx.reduction = inputs[5]
    ctx.has_bias = inputs[3] is not None
    ctx.dtypes = (inputs[0].dtype, inputs[1].dtype, inputs[3].dtype if inputs[3] is not None else None)
    # Held by the node itself, not as saved tensors: backward hands them on
    # and drops its reference, so autograd can move them into `.grad`
    # instead of copying them (they are this node's alone).
    ctx.grads = list(output[1:])
    # Nothing flows into those outputs: no zero tensors for their gradients.
    ctx.set_materialize_grads(False)


def _linear_grad(ctx, grad_loss, _gh, _gw, _gb):
    if ctx.reduction == 2:
        raise RuntimeError("xent.torch.linear_cross_entropy: backward needs reduction 'mean' or 'sum'")
    if not ctx.grads:
        raise RuntimeError(
            "xent.torch.linear_cross_entropy: backward runs once per forward (its gradients are handed on)"
        )
    gh, gw, gb = ctx.grads
    ctx.grads = []
    # Scaled in place: the forward made these tensors for this backward alone.
    g = grad_loss.to(torch.float32)
    dh, dw, db = ctx.dtypes
    grads = (gh.mul_(g).to(dh), gw.mul_(g).to(dw), None, gb.mul_(g).to(db) if ctx.has_bias else None)
    return grads + (None,) * 7


torch.library.register_autograd("xent::linear_cross_entropy", _linear_grad, setup_context=_linear_setup)


def linear_cross_entropy(
    hidden,
    weight,
    target,
    bias=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    *,
    z_loss_scale=0.0,
    softcap=0.0,
    num_threads=None,
):
    """``F.cross_entropy(hidden @ weight.T + bias, target, ...)`` without the
    logits: `hidden` (rows x dim), `weight` (classes x dim, nn.Linear's
    layout), CPU tensors (computed in float32). Gradients flow to hidden,
    weight and bias (reduction 'mean' or 'sum'); they are made in the
    forward pass when any of them requires grad, and not at all otherwise."""
    need = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (hidden, weight, bias))
    loss, _, _, _ = torch.ops.xent.linear_cross_entropy(
        hidden,
        weight,
        target,
        bias,
        int(ignore_index),
        _REDUCTIONS[_reduction(None, None, reduction)],
        float(label_smoothing),
        float(z_loss_scale),
        float(softcap),
        _threads(num_threads),
        need,
    )
    return loss


# ---- vocabulary-parallel cross-entropy over torch.distributed ----

_STATS = 5  # floats per row of XentShardStats


class _VocabParallel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, shard, target, vocab_start, vocab_size, group, reduction, ignore_index, label_smoothing, weight, z_loss_scale, num_threads):
        import torch.distributed as dist

        x = shard.detach()
        if x.dtype != torch.float32:
            raise TypeError(f"logits_shard: float32 only, got {x.dtype}")
        x = x if x.shape[1] <= 1 or x.stride(1) == 1 else x.contiguous()
        rows, n = x.shape
        stride = x.stride(0) if rows > 1 else max(n, 1)
        t = _labels(target.detach())
        w = _weight(weight)
        o = _options(_REDUCTIONS[reduction], ignore_index, w, label_smoothing, z_loss_scale, 0.0, num_threads)
        stats = torch.empty((rows, _STATS), dtype=torch.float32)
        _x._check(_lib.xent_shard_stats(_ptr(x), rows, n, stride, vocab_start, vocab_size, _ptr(t), _c.byref(o), _ptr(stats)))
        # The one collective: every rank's statistics, merged in rank order
        # (torch.distributed has no user-defined reduction for an all-reduce).
        world = dist.get_world_size(group)
        parts = [torch.empty_like(stats) for _ in range(world)]
        dist.all_gather(parts, stats, group=group)
        merged = parts[0].clone()
        for p in parts[1:]:
            _lib.xent_shard_stats_merge(_ptr(p), _ptr(merged), rows)
        loss = torch.empty((rows,) if reduction == "none" else (), dtype=torch.float32)
        _x._check(_lib.xent_shard_loss(_ptr(merged), rows, vocab_size, _ptr(t), _c.byref(o), _ptr(loss), None))
        ctx.save_for_backward(x, t, w, merged)
        ctx.args = (vocab_start, vocab_size, reduction, ignore_index, label_smoothing, z_loss_scale, num_threads)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        x, t, w, merged = ctx.saved_tensors
        vocab_start, vocab_size, reduction, ignore_index, label_smoothing, z_loss_scale, num_threads = ctx.args
        rows, n = x.shape
        stride = x.stride(0) if rows > 1 else max(n, 1)
        o = _options(_REDUCTIONS[reduction], ignore_index, w, label_smoothing, z_loss_scale, 0.0, num_threads)
        g = grad_output.detach().to(torch.float32).contiguous()
        grad = torch.empty((rows, n), dtype=torch.float32)
        _x._check(
            _lib.xent_shard_backward(
                _ptr(x), rows, n, stride, vocab_start, vocab_size, _ptr(t), _c.byref(o), _ptr(merged), _ptr(g),
                _ptr(grad), max(n, 1),
            )
        )
        return (grad,) + (None,) * 10


def vocab_parallel_cross_entropy(
    logits_shard,
    target,
    vocab_start,
    vocab_size,
    group=None,
    *,
    reduction="mean",
    ignore_index=-100,
    label_smoothing=0.0,
    weight=None,
    z_loss_scale=0.0,
    num_threads=None,
):
    """Cross-entropy of logits split by vocabulary across the processes of a
    ``torch.distributed`` group: this rank holds columns ``[vocab_start,
    vocab_start + logits_shard.shape[-1])`` of every row (shards may be
    uneven or empty); `target` and `weight` are global and the same on every
    rank. One collective per call (an all_gather of 5 floats per row); the
    loss is the same on every rank and equals ``F.cross_entropy`` on the
    gathered logits; backward gives each rank its shard's gradient."""
    reduction = _reduction(None, None, reduction)
    shard = logits_shard.reshape(target.numel(), logits_shard.shape[-1])
    out = _VocabParallel.apply(
        shard, target.reshape(-1), int(vocab_start), int(vocab_size), group, reduction, int(ignore_index),
        float(label_smoothing), weight, float(z_loss_scale), _threads(num_threads),
    )
    return out.reshape(logits_shard.shape[:-1]) if reduction == "none" else out
