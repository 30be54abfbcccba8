#!/usr/bin/env python3
"""xent beside memcpy, the plain C loop, PyTorch and JAX/XLA, in one process.

    python3 bench/compare.py [--threads N] [--shapes 2048x32000,262144x10] [--reps 7]
    python3 bench/compare.py --linear 4096x1024x32000 [--threads N] [--reps 3]
    python3 bench/compare.py --bf16 [--shapes 2048x32000] [--threads N]
    python3 bench/compare.py --wrapper [--shapes 4096x32000] [--linear 4096x1024x32000] [--threads N]

Loads target/release/libxent.so (run `make build` first) through ctypes.
Times the fused forward+backward (gradient into a separate buffer) and the
forward alone; prints medians, G logits/s and ratios, and checks that the
losses agree. Each repetition times every column in turn (memcpy, xent,
the C loop, PyTorch, XLA), so noise on a shared machine hits them alike. Needs numpy; PyTorch and JAX (with optax) are used when
installed and skipped with a message otherwise. Everything runs on the same
data, thread count and process, so the ratios are like for like.

--bf16 times the bfloat16 calls (xent_forward_backward_bf16) beside xent's
float32 call on the same (widened) values and PyTorch's bfloat16
F.cross_entropy + backward, and checks the losses agree.

--wrapper times the PyTorch wrapper, xent.torch.cross_entropy (and with
inplace_backward=True), beside F.cross_entropy, each as forward + backward
(torch.autograd.grad) on float32 logits that require grad; with --linear,
xent.torch.linear_cross_entropy joins the --linear table.

--linear ROWSxDIMxCLASSES compares the fused linear + cross-entropy call
(xent_linear_forward_backward) with PyTorch's F.linear + F.cross_entropy +
backward: median time and peak memory above the inputs and outputs, each
measured in a child process of its own so the high-water marks are separate.
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
SHAPES = "2048x32000,512x128256,16384x1000,262144x10,65536x100,4096x10,64x10,1x10"

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--shapes", default=SHAPES)
p.add_argument("--reps", type=int, default=7)
p.add_argument("--lib", default=os.environ.get("XENT_LIBRARY", os.path.join(ROOT, "target/release/libxent.so")))
p.add_argument("--linear", help="ROWSxDIMxCLASSES: compare the fused linear call instead")
p.add_argument("--bf16", action="store_true", help="compare the bfloat16 calls instead")
p.add_argument("--wrapper", action="store_true", help="compare the PyTorch wrapper instead")
p.add_argument("--linear-child", help=argparse.SUPPRESS)
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
        ("parallel_ctx", ctypes.c_void_p), ("grad_scale", ctypes.c_float), ("grad_accumulate", ctypes.c_uint32),
        ("grad_zero_padding", ctypes.c_uint32),
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


def interleaved_times(fns, reps):
    """Median time of each of `fns` (name -> function), the functions run in
    turn within each repetition, so noise on a shared machine hits all alike."""
    for fn in fns.values():
        fn()  # warm-up (and JIT compile)
    ts = {name: [] for name in fns}
    budget = time.perf_counter() + 60.0
    for _ in range(reps):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            ts[name].append(time.perf_counter() - t)
        if time.perf_counter() > budget and len(ts["copy"]) >= 3:
            break
    return {name: statistics.median(v) for name, v in ts.items()}


def status_bytes(key):
    """A /proc/self/status memory line (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def linear_child(who, shape):
    """Times one contender of --linear and prints its figures as JSON."""
    import json

    rows, dim, classes = (int(v) for v in shape.split("x"))
    rng = np.random.default_rng(0)
    h = rng.standard_normal((rows, dim), dtype=np.float32)
    w = (rng.standard_normal((classes, dim), dtype=np.float32) / np.float32(np.sqrt(dim))).astype(np.float32)
    b = (rng.standard_normal(classes, dtype=np.float32) * 0.1).astype(np.float32)
    y = rng.integers(0, classes, rows, dtype=np.int32)
    inputs = h.nbytes + w.nbytes + b.nbytes + y.nbytes
    outputs = h.nbytes + w.nbytes + b.nbytes  # grad_hidden, grad_weight, grad_bias
    if who == "xent":
        gh, gw, gb = np.ones_like(h), np.ones_like(w), np.ones_like(b)  # allocated and touched
        loss = np.zeros(1, np.float32)
        z = ctypes.c_size_t
        lib.xent_linear_forward_backward.argtypes = [P, z, z, z, P, z, z, P, P, P, P, P, P, P, z, P, z, P, P, z]

        def run():
            s = lib.xent_linear_forward_backward(ptr(h), rows, dim, dim, ptr(w), classes, dim, ptr(b), ptr(y),
                                                 ctypes.byref(opts), ptr(loss), None, None, ptr(gh), dim, ptr(gw),
                                                 dim, ptr(gb), None, 0)
            assert s == 0, lib.xent_last_error()
            return float(loss[0])

        allocated_in_call = 0
    elif who == "xent.torch":
        import torch

        sys.path.insert(0, os.path.join(ROOT, "python"))
        os.environ.setdefault("XENT_LIBRARY", args.lib)
        import xent.torch as xt

        torch.set_num_threads(args.threads)
        th, tw, tb = (torch.from_numpy(a).requires_grad_(True) for a in (h, w, b))
        ty = torch.from_numpy(y.astype(np.int64))

        def run():
            th.grad = tw.grad = tb.grad = None
            out = xt.linear_cross_entropy(th, tw, ty, tb)
            out.backward()
            return float(out.detach())

        allocated_in_call = outputs
    else:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(args.threads)
        th, tw, tb = (torch.from_numpy(a).requires_grad_(True) for a in (h, w, b))
        ty = torch.from_numpy(y.astype(np.int64))

        def run():
            th.grad = tw.grad = tb.grad = None
            out = F.cross_entropy(F.linear(th, tw, tb), ty)
            out.backward()
            return float(out.detach())

        allocated_in_call = outputs  # torch allocates the gradients during the call
    # Forget the high-water mark of making the data; measure from here.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = status_bytes("VmRSS")
    t = median_time(run, args.reps)
    extra = status_bytes("VmHWM") - base - allocated_in_call
    print(json.dumps({"time": t, "extra": extra, "loss": run(), "inputs": inputs, "outputs": outputs}))


def linear_compare(shape):
    import json

    rows, dim, classes = (int(v) for v in shape.split("x"))
    print(f"# fused linear + cross-entropy, {shape} (rows x dim x classes), {args.threads} thread(s); "
          f"logits would be {rows * classes * 4 / 2**20:.0f} MiB")
    print("# peak = resident memory above inputs + outputs at the high-water mark (VmHWM), own process each")
    print("| contender | time ms | GFLOP/s | peak MiB | loss |")
    print("|---|---|---|---|---|")
    flops = 6.0 * rows * dim * classes  # three products of 2·rows·dim·classes
    losses = {}
    for who in ("xent", "xent.torch", "torch") if args.wrapper else ("xent", "torch"):
        cmd = [sys.executable, os.path.abspath(__file__), "--linear-child", who, "--linear", shape,
               "--threads", str(args.threads), "--reps", str(args.reps), "--lib", args.lib]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            why = "not installed" if "No module named" in r.stderr else r.stderr.strip().splitlines()[-1:]
            print(f"| {who} | skipped: {why} | | | |")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        losses[who] = d["loss"]
        print(f"| {who} | {d['time']*1e3:.0f} | {flops/d['time']/1e9:.1f} | {d['extra']/2**20:.1f} | {d['loss']:.6f} |",
              flush=True)
    for who in ("xent", "xent.torch"):
        if who in losses and "torch" in losses:
            a, b = losses[who], losses["torch"]
            assert abs(a - b) <= 1e-4 * abs(b), losses
    if args.wrapper and "torch" in losses:
        print("(time ratio torch / contender and peak ratio contender / torch follow from the table)")


def wrapper_compare():
    """xent.torch.cross_entropy beside F.cross_entropy, forward + backward."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("--wrapper skipped: torch is not installed")
        return
    sys.path.insert(0, os.path.join(ROOT, "python"))
    os.environ.setdefault("XENT_LIBRARY", args.lib)
    import xent.torch as xt

    torch.set_num_threads(args.threads)
    shapes = args.shapes if args.shapes != SHAPES else "4096x32000"
    print(f"# PyTorch wrapper, float32, forward + backward, {args.threads} thread(s), median of {args.reps}")
    print("| shape | F.cross_entropy ms | xent.torch ms | ratio | inplace_backward ms | ratio |")
    print("|---|---|---|---|---|---|")
    for shape in shapes.split(","):
        rows, classes = (int(v) for v in shape.split("x"))
        g = torch.Generator().manual_seed(0)
        z0 = torch.randn(rows, classes, generator=g) * 2
        y = torch.randint(0, classes, (rows,), generator=g)

        def once(f):
            # A fresh copy of the logits per run, outside the timing.
            z = z0.clone().requires_grad_()
            logits = z * 1.0  # a non-leaf, as a model's logits are
            t = time.perf_counter()
            loss = f(logits)
            torch.autograd.grad(loss, logits)
            return time.perf_counter() - t, float(loss.detach())

        contenders = (lambda z: F.cross_entropy(z, y), lambda z: xt.cross_entropy(z, y),
                      lambda z: xt.cross_entropy(z, y, inplace_backward=True))
        # Interleaved, so the machine's noise hits all three alike; the first
        # round warms up.
        times, losses = ([], [], []), [0.0] * 3
        for r in range(args.reps + 1):
            for k, f in enumerate(contenders):
                t, losses[k] = once(f)
                if r:
                    times[k].append(t)
        (tf, tx, ti), (lf, lx, li) = (statistics.median(t) for t in times), losses
        assert abs(lx - lf) <= 1e-5 * abs(lf) and li == lx, (lf, lx, li)
        print(f"| {shape} | {tf*1e3:.0f} | {tx*1e3:.0f} | {tf/tx:.1f}x | {ti*1e3:.0f} | {tf/ti:.1f}x |", flush=True)


def bf16_compare():
    lib.xent_forward_backward_bf16.argtypes = lib.xent_forward_backward.argtypes
    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("# PyTorch not installed: its column is skipped")
    print(f"# bfloat16 logits and gradient, {args.threads} thread(s); medians of up to {args.reps} runs, ms")
    print("| shape | xent f32 fused | xent bf16 fused | bf16 / f32 | torch bf16 f+b | torch / xent bf16 |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for shape in args.shapes.split(","):
        rows, cols = (int(v) for v in shape.split("x"))
        z32 = (rng.standard_normal((rows, cols), dtype=np.float32) * 3).astype(np.float32)
        # Round to bfloat16 (nearest even) and widen back: both calls see the same values.
        b = z32.view(np.uint32)
        h = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
        z = (h.astype(np.uint32) << 16).view(np.float32)
        y = rng.integers(0, cols, rows, dtype=np.int32)
        g32, g16 = np.empty_like(z), np.empty_like(h)
        l32, l16 = np.zeros(1, np.float32), np.zeros(1, np.float32)

        def f32():
            s = lib.xent_forward_backward(ptr(z), rows, cols, cols, ptr(y), ctypes.byref(opts), ptr(l32), None, None,
                                          ptr(g32), cols)
            assert s == 0, lib.xent_last_error()

        def bf16():
            s = lib.xent_forward_backward_bf16(ptr(h), rows, cols, cols, ptr(y), ctypes.byref(opts), ptr(l16), None,
                                               None, ptr(g16), cols)
            assert s == 0, lib.xent_last_error()

        t32, t16 = median_time(f32, args.reps), median_time(bf16, args.reps)
        assert l32[0] == l16[0], (l32[0], l16[0])
        cells = [shape, f"{t32*1e3:.2f}", f"{t16*1e3:.2f}", f"{t16/t32:.2f}"]
        if torch:
            tz = torch.from_numpy(z).to(torch.bfloat16).requires_grad_(True)
            ty = torch.from_numpy(y.astype(np.int64))

            def torch_fb():
                tz.grad = None
                out = F.cross_entropy(tz, ty)
                out.backward()
                return out

            tt = median_time(torch_fb, args.reps)
            tl = float(torch_fb().detach().float())
            assert abs(tl - float(l16[0])) <= 2e-2 * abs(tl), (tl, float(l16[0]))  # PyTorch reduces in bf16
            cells += [f"{tt*1e3:.2f}", f"{tt/t16:.1f}x"]
        else:
            cells += ["-", "-"]
        print("| " + " | ".join(cells) + " |", flush=True)


if args.bf16:
    bf16_compare()
    sys.exit(0)
if args.linear_child:
    linear_child(args.linear_child, args.linear)
    sys.exit(0)
if args.wrapper:
    wrapper_compare()
if args.linear:
    linear_compare(args.linear)
    sys.exit(0)
if args.wrapper:
    sys.exit(0)

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
print(f"# medians of up to {args.reps} runs, each run timing every column in turn; times in ms; "
      "G/s = 1e9 logits per second; ratios > 1 mean xent is faster (memcpy column: xent time / memcpy time)")
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

    fns = {"copy": lambda: np.copyto(g, z), "fused": xent_fused, "fwd": xent_fwd}
    xent_fused()
    xent_loss = float(loss[0])
    if naive:
        c_loss = naive.naive_forward(ptr(z), rows, cols, ptr(y))
        assert abs(c_loss - xent_loss) <= 1e-4 * abs(xent_loss) + 1e-6, (c_loss, xent_loss)
        fns["c"] = lambda: naive.naive_forward(ptr(z), rows, cols, ptr(y))
    if torch:
        tz = torch.from_numpy(z).requires_grad_(True)
        ty = torch.from_numpy(y.astype(np.int64))

        def torch_fb():
            tz.grad = None
            l = F.cross_entropy(tz, ty)
            l.backward()
            return l

        tl = float(torch_fb().detach())
        assert abs(tl - xent_loss) <= 1e-4 * abs(xent_loss) + 1e-6, (tl, xent_loss)
        fns["torch"] = torch_fb
    if jax:
        jz = jnp.asarray(z)
        jy = jnp.asarray(y)
        f = jax.jit(jax.value_and_grad(lambda a: optax.softmax_cross_entropy_with_integer_labels(a, jy).mean()))

        def jax_fb():
            v, gr = f(jz)
            gr.block_until_ready()
            return v

        jl = float(jax_fb())
        assert abs(jl - xent_loss) <= 1e-4 * abs(xent_loss) + 1e-6, (jl, xent_loss)
        fns["jax"] = jax_fb
    t = interleaved_times(fns, args.reps)
    t_copy, t_fused, t_fwd = t["copy"], t["fused"], t["fwd"]
    cells = [shape, f"{t_copy*1e3:.3f}", f"{t_fused*1e3:.3f}", f"{n/t_fused/1e9:.2f}", f"{t_fused/t_copy:.2f}",
             f"{t_fwd*1e3:.3f}"]
    cells += [f"{t['c']*1e3:.3f}", f"{t['c']/t_fwd:.1f}x"] if naive else ["-", "-"]
    cells += [f"{t['torch']*1e3:.3f}", f"{t['torch']/t_fused:.1f}x"] if torch else ["-", "-"]
    cells += [f"{t['jax']*1e3:.3f}", f"{t['jax']/t_fused:.1f}x"] if jax else ["-", "-"]
    print("| " + " | ".join(cells) + " |", flush=True)
