#!/usr/bin/env python3
"""xent beside memcpy, the plain C loop, PyTorch and JAX/XLA, in one process.

    python3 bench/compare.py [--threads N] [--shapes 2048x32000,262144x10] [--reps 7]

Loads target/release/libxent.so (run `make build` first) through ctypes.
Times the fused forward+backward (gradient into a separate buffer) and the
forward alone; prints medians, G logits/s and ratios, and checks that the
losses agree. Needs numpy; PyTorch and JAX (with optax) are used when
installed and skipped with a message otherwise. Everything runs on the same
data, thread count and process, so the ratios are like for like.
"""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = "2048x32000,512x128256,16384x1000,262144x10,1x10"

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--shapes", default=SHAPES)
p.add_argument("--reps", type=int, default=7)
p.add_argument("--lib", default=os.environ.get("XENT_LIBRARY", os.path.join(ROOT, "target/release/libxent.so")))
args = p.parse_args()

# Thread counts must be fixed before the frameworks load.
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
if args.threads == 1:
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

try:
    import numpy as np
except ImportError:
    sys.exit("bench/compare.py needs numpy (pip install numpy)")


class Options(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t), ("reduction", ctypes.c_uint32), ("ignore_index", ctypes.c_int32),
        ("class_weights", ctypes.c_void_p), ("label_smoothing", ctypes.c_float), ("z_loss_scale", ctypes.c_float),
        ("logit_softcap", ctypes.c_float), ("num_threads", ctypes.c_uint32), ("parallel_for", ctypes.c_void_p),
        ("parallel_ctx", ctypes.c_void_p),
    ]


lib = ctypes.CDLL(args.lib)
lib.xent_options_default.restype = Options
lib.xent_active_isa.restype = ctypes.c_char_p
lib.xent_last_error.restype = ctypes.c_char_p
P = ctypes.c_void_p
lib.xent_forward.argtypes = [P, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t, P, P, P, P, P]
lib.xent_forward_backward.argtypes = [P, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t, P, P, P, P, P, P, ctypes.c_size_t]
opts = lib.xent_options_default()
opts.num_threads = args.threads


def ptr(a):
    return a.ctypes.data_as(P)


def naive_lib():
    src = os.path.join(ROOT, "bench/naive.c")
    out = os.path.join(tempfile.mkdtemp(), "libnaive.so")
    try:
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", src, "-o", out, "-lm"], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"# plain C loop skipped: could not compile bench/naive.c ({e})")
        return None
    n = ctypes.CDLL(out)
    n.naive_forward.restype = ctypes.c_float
    n.naive_forward.argtypes = [P, ctypes.c_size_t, ctypes.c_size_t, P]
    n.naive_forward_backward.restype = ctypes.c_float
    n.naive_forward_backward.argtypes = [P, ctypes.c_size_t, ctypes.c_size_t, P, P]
    return n


def median_time(fn, reps):
    fn()  # warm-up (and JIT compile)
    ts = []
    budget = time.perf_counter() + 20.0
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
        if time.perf_counter() > budget and len(ts) >= 3:
            break
    return statistics.median(ts)


try:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
except ImportError:
    torch = None
    print("# PyTorch not installed: skipped (pip install torch)")
try:
    import jax
    import jax.numpy as jnp
    import optax

    jax.config.update("jax_platforms", "cpu")
except ImportError:
    jax = None
    print("# JAX/optax not installed: skipped (pip install jax optax)")

naive = naive_lib()
print(f"# xent {lib.xent_active_isa().decode()} kernels, {args.threads} thread(s), {os.cpu_count()} cores; "
      f"torch {torch.__version__ if torch else '-'}, jax {jax.__version__ if jax else '-'}")
print(f"# medians of up to {args.reps} runs; times in ms; G/s = 1e9 logits per second; "
      "ratios > 1 mean xent is faster (memcpy column: xent time / memcpy time)")
header = ("shape", "memcpy", "xent fused", "G/s", "x memcpy", "xent fwd", "C fwd", "fwd vs C",
          "torch f+b", "vs torch", "xla f+b", "vs xla")
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
rng = np.random.default_rng(0)
for shape in args.shapes.split(","):
    rows, cols = (int(v) for v in shape.split("x"))
    z = (rng.standard_normal((rows, cols), dtype=np.float32) * 3).astype(np.float32)
    y = rng.integers(0, cols, rows, dtype=np.int32)
    g = np.empty_like(z)
    loss = np.zeros(1, np.float32)
    lse = np.zeros(rows, np.float32)
    n = rows * cols

    def xent_fused():
        s = lib.xent_forward_backward(ptr(z), rows, cols, cols, ptr(y), ctypes.byref(opts), ptr(loss), None, None, ptr(g), cols)
        assert s == 0, lib.xent_last_error()

    def xent_fwd():
        s = lib.xent_forward(ptr(z), rows, cols, cols, ptr(y), ctypes.byref(opts), ptr(loss), ptr(lse), None)
        assert s == 0, lib.xent_last_error()

    t_copy = median_time(lambda: np.copyto(g, z), args.reps)
    t_fused = median_time(xent_fused, args.reps)
    xent_loss = float(loss[0])
    t_fwd = median_time(xent_fwd, args.reps)
    cells = [shape, f"{t_copy*1e3:.3f}", f"{t_fused*1e3:.3f}", f"{n/t_fused/1e9:.2f}", f"{t_fused/t_copy:.2f}",
             f"{t_fwd*1e3:.3f}"]
    if naive:
        c_loss = naive.naive_forward(ptr(z), rows, cols, ptr(y))
        t_c = median_time(lambda: naive.naive_forward(ptr(z), rows, cols, ptr(y)), args.reps)
        assert abs(c_loss - xent_loss) <= 1e-4 * abs(xent_loss) + 1e-6, (c_loss, xent_loss)
        cells += [f"{t_c*1e3:.3f}", f"{t_c/t_fwd:.1f}x"]
    else:
        cells += ["-", "-"]
    if torch:
        tz = torch.from_numpy(z).requires_grad_(True)
        ty = torch.from_numpy(y.astype(np.int64))

        def torch_fb():
            tz.grad = None
            l = F.cross_entropy(tz, ty)
            l.backward()
            return l

        t_torch = median_time(torch_fb, args.reps)
        tl = float(torch_fb().detach())
        assert abs(tl - xent_loss) <= 1e-4 * abs(xent_loss) + 1e-6, (tl, xent_loss)
        cells += [f"{t_torch*1e3:.3f}", f"{t_torch/t_fused:.1f}x"]
    else:
        cells += ["-", "-"]
    if jax:
        jz = jnp.asarray(z)
        jy = jnp.asarray(y)
        f = jax.jit(jax.value_and_grad(lambda a: optax.softmax_cross_entropy_with_integer_labels(a, jy).mean()))

        def jax_fb():
            v, gr = f(jz)
            gr.block_until_ready()
            return v

        t_jax = median_time(jax_fb, args.reps)
        jl = float(jax_fb())
        assert abs(jl - xent_loss) <= 1e-4 * abs(xent_loss) + 1e-6, (jl, xent_loss)
        cells += [f"{t_jax*1e3:.3f}", f"{t_jax/t_fused:.1f}x"]
    else:
        cells += ["-", "-"]
    print("| " + " | ".join(cells) + " |", flush=True)
