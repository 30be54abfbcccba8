"""PyTorch autograd wrappers (imported only on request; needs torch).

``xent.torch.cross_entropy(input, target, ...)`` takes the arguments of
``torch.nn.functional.cross_entropy`` that xent has, for CPU tensors, so a
training loop swaps one line. The forward computes the loss and the
gradient in one pass into a new tensor that autograd saves; ``backward``
only reads it (``grad * grad_output`` makes a new tensor), so no tensor
autograd saved is ever written (the bug of Liger-Kernel#272).
"""

import torch

import xent as _x

__all__ = ["cross_entropy", "linear_cross_entropy"]

_TYPESTR = {torch.float32: "<f4", torch.int32: "<i4", torch.bfloat16: "<u2", torch.float16: "<f2"}


class _View:
    """A CPU tensor seen through ``__array_interface__`` (no NumPy needed)."""

    def __init__(self, t, name):
        if t.device.type != "cpu":
            raise ValueError(f"{name}: xent runs on the CPU, got a tensor on {t.device}")
        if t.dtype not in _TYPESTR:
            raise TypeError(f"{name}: dtype {t.dtype} is not supported")
        self.t = t
        size = t.element_size()
        self.__array_interface__ = {
            "shape": tuple(t.shape),
            "typestr": _TYPESTR[t.dtype],
            "data": (t.data_ptr(), False),
            "strides": tuple(s * size for s in t.stride()),
            "version": 3,
        }


def _rows(t):
    """A 2-D tensor whose rows have contiguous elements (copied if not)."""
    if t.dim() != 2:
        raise ValueError(f"expected a 2-D (rows x classes) tensor, got {t.dim()} dimensions")
    return t if t.stride(1) == 1 and t.stride(0) >= t.shape[1] else t.contiguous()


def _labels(target):
    """Class indices as contiguous int32 (values beyond int32 are refused,
    not wrapped into a valid class)."""
    if target.dtype != torch.int32:
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target: class indices must be integers, got {target.dtype}")
        if target.numel() and (int(target.min()) < -(2**31) or int(target.max()) >= 2**31):
            raise ValueError("target: class indices do not fit int32")
        target = target.to(torch.int32)
    return target.contiguous()


def _loss_tensor(loss, reduction):
    """The loss as a float32 tensor: a scalar, or one value per row."""
    if reduction == "none":
        return torch.frombuffer(loss, dtype=torch.float32).clone() if len(loss) else torch.zeros(0)
    return torch.tensor(loss, dtype=torch.float32)


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, reduction, label_smoothing, z_loss_scale, softcap, threads):
        x = _rows(input.detach())
        soft = target.is_floating_point()
        t = target.detach().to(torch.float32).contiguous() if soft else _labels(target.detach())
        w = weight.detach().to(torch.float32).contiguous() if weight is not None else None
        grad = torch.empty(x.shape, dtype=x.dtype)
        half = {torch.bfloat16: "bf16", torch.float16: "f16"}.get(x.dtype)
        loss, _ = _x.cross_entropy_forward_backward(
            _View(x, "input"),
            _View(t, "target"),
            reduction=reduction,
            ignore_index=ignore_index,
            weight=_View(w, "weight") if w is not None else None,
            label_smoothing=label_smoothing,
            z_loss_scale=z_loss_scale,
            softcap=softcap,
            num_threads=threads,
            half=half if x.dtype == torch.bfloat16 else None,
            out=_View(grad, "grad"),
        )
        ctx.save_for_backward(grad)
        ctx.reduction = reduction
        # As F.cross_entropy: the loss in the logits' dtype.
        return _loss_tensor(loss, reduction).to(input.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        g = grad_output.to(torch.float32)
        scale = g.reshape(-1, 1) if ctx.reduction == "none" else g
        # A new tensor: the saved gradient is never written.
        out = (grad.to(torch.float32) * scale).to(grad.dtype)
        return out, None, None, None, None, None, None, None, None


def cross_entropy(
    input,
    target,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    *,
    z_loss_scale=0.0,
    softcap=0.0,
    num_threads=0,
):
    """``F.cross_entropy(input, target, weight, ignore_index=...,
    reduction=..., label_smoothing=...)`` for CPU tensors of shape
    (rows, classes): float32, bfloat16 or float16 logits, class indices
    (any integer type) or float probabilities; plus xent's `z_loss_scale`
    and `softcap`. The loss has the logits' dtype, as PyTorch's."""
    return _CrossEntropy.apply(
        input, target, weight, ignore_index, reduction, label_smoothing, z_loss_scale, softcap, num_threads
    )


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, target, bias, ignore_index, reduction, label_smoothing, z_loss_scale, softcap, threads):
        h = _rows(hidden.detach().to(torch.float32))
        w = _rows(weight.detach().to(torch.float32))
        b = bias.detach().to(torch.float32).contiguous() if bias is not None else None
        t = _labels(target.detach())
        loss, gh, gw, gb = _x.linear_cross_entropy_forward_backward(
            _View(h, "hidden"),
            _View(w, "weight"),
            _View(t, "target"),
            _View(b, "bias") if b is not None else None,
            reduction=reduction,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            z_loss_scale=z_loss_scale,
            softcap=softcap,
            num_threads=threads,
        )
        def tensor(a, shape):
            return torch.frombuffer(a, dtype=torch.float32).reshape(shape).clone() if a is not None else None

        grads = (tensor(gh, h.shape), tensor(gw, w.shape), tensor(gb, (w.shape[0],)))
        ctx.save_for_backward(*(g for g in grads if g is not None))
        ctx.has_bias = b is not None
        ctx.reduction = reduction
        return _loss_tensor(loss, reduction)

    @staticmethod
    def backward(ctx, grad_output):
        if ctx.reduction == "none":
            raise RuntimeError("xent.torch.linear_cross_entropy: backward needs reduction 'mean' or 'sum'")
        saved = ctx.saved_tensors
        g = grad_output.to(torch.float32)
        gh, gw = saved[0] * g, saved[1] * g
        gb = saved[2] * g if ctx.has_bias else None
        return gh, gw, None, gb, None, None, None, None, None, None


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
    num_threads=0,
):
    """``F.cross_entropy(hidden @ weight.T + bias, target, ...)`` without the
    logits: `hidden` (rows x dim), `weight` (classes x dim, nn.Linear's
    layout), float32 CPU tensors. Gradients flow to hidden, weight and bias
    (reduction 'mean' or 'sum')."""
    return _LinearCrossEntropy.apply(
        hidden, weight, target, bias, ignore_index, reduction, label_smoothing, z_loss_scale, softcap, num_threads
    )
