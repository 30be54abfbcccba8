"""xent.torch against torch.nn.functional.cross_entropy (skipped, saying
so, without torch)."""

import unittest

import support  # noqa: F401  (puts the package on sys.path)

try:
    import torch
    import torch.nn.functional as F

    import xent.torch as xt
except ImportError:  # pragma: no cover - depends on the machine
    torch = None


@unittest.skipIf(torch is None, "torch is not installed: skipping the PyTorch wrapper tests")
class Torch(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)

    def compare(self, make_input, target, **kw):
        a_in, b_in = make_input(), make_input()
        a = xt.cross_entropy(a_in, target, **kw)
        b = F.cross_entropy(b_in, target, **kw)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        up = torch.rand_like(a) + 0.5
        ga, = torch.autograd.grad((a * up).sum(), a_in)
        gb, = torch.autograd.grad((b * up).sum(), b_in)
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6)

    def test_matches_pytorch_for_every_shared_option(self):
        z = torch.randn(9, 13) * 3
        y = torch.tensor([0, 12, -100, 5, 5, 1, 2, 3, 7])
        w = torch.rand(13) + 0.1
        p = torch.softmax(torch.randn(9, 13), 1)
        make = lambda: z.clone().requires_grad_()  # noqa: E731
        for reduction in ("mean", "sum", "none"):
            for kw in ({}, {"weight": w}, {"label_smoothing": 0.2}, {"weight": w, "label_smoothing": 0.1}):
                self.compare(make, y, reduction=reduction, **kw)
            self.compare(make, y.clamp(min=0), reduction=reduction, ignore_index=5, weight=w)
            self.compare(make, p, reduction=reduction, label_smoothing=0.1)

    def test_gradcheck_style_and_saved_tensor_untouched(self):
        z = torch.randn(4, 6, requires_grad=True)
        y = torch.tensor([1, 0, 5, 2])
        loss = xt.cross_entropy(z, y)
        saved = loss.grad_fn.saved_tensors[0].clone()
        g1, = torch.autograd.grad(loss, z, retain_graph=True)
        g2, = torch.autograd.grad(loss * 3, z, retain_graph=True)
        torch.testing.assert_close(g2, 3 * g1)
        torch.testing.assert_close(loss.grad_fn.saved_tensors[0], saved)
        # Finite differences in float64 of the float32 loss, loosely.
        eps = 1e-2
        with torch.no_grad():
            for i, j in ((0, 1), (2, 3), (3, 5)):
                zp, zm = z.detach().clone(), z.detach().clone()
                zp[i, j] += eps
                zm[i, j] -= eps
                fd = (xt.cross_entropy(zp, y) - xt.cross_entropy(zm, y)) / (2 * eps)
                self.assertAlmostEqual(float(fd), float(g1[i, j]), places=3)

    def test_bad_targets_are_refused(self):
        z = torch.randn(2, 3)
        with self.assertRaises(ValueError):
            xt.cross_entropy(z, torch.tensor([0, 2**32 + 1]))  # would wrap to class 1
        with self.assertRaises(Exception):
            xt.cross_entropy(z, torch.tensor([0, 3]))  # XentError: outside [0, classes)

    def test_bf16_logits(self):
        z = (torch.randn(5, 40) * 2).to(torch.bfloat16).requires_grad_()
        y = torch.tensor([0, 39, 7, 7, 1])
        a = xt.cross_entropy(z, y)
        self.assertEqual(a.dtype, torch.bfloat16)
        ga, = torch.autograd.grad(a, z)
        zf = z.detach().float().requires_grad_()
        b = F.cross_entropy(zf, y)
        gb, = torch.autograd.grad(b, zf)
        torch.testing.assert_close(ga.float(), gb, rtol=1e-2, atol=1e-4)

    def test_linear_cross_entropy(self):
        h = torch.randn(6, 8, requires_grad=True)
        w = torch.randn(11, 8, requires_grad=True)
        b = torch.randn(11, requires_grad=True)
        y = torch.tensor([0, 10, 3, 3, -100, 1])
        a = xt.linear_cross_entropy(h, w, y, b, label_smoothing=0.1)
        r = F.cross_entropy(h @ w.T + b, y, label_smoothing=0.1)
        torch.testing.assert_close(a, r)
        for u, v in zip(torch.autograd.grad(a, (h, w, b)), torch.autograd.grad(r, (h, w, b))):
            torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6)

    def test_positional_drop_in_and_legacy_arguments(self):
        z = torch.randn(7, 5) * 2
        y = torch.tensor([0, 4, -1, 2, 2, 3, 1])
        w = torch.rand(5) + 0.2
        y2 = y.clamp(min=0)
        cases = [
            ((z, y, None, None, -1), {}),
            ((z, y2, w), {}),
            ((z, y2, w, None, -100, None, "sum"), {}),
            ((z, y2, None, None, -100, None, "none", 0.25), {}),
            ((z, y2), {"size_average": False}),
            ((z, y2), {"reduce": False}),
            ((z, y2, w, True, -100, True), {}),
        ]
        import warnings

        for args, kw in cases:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a, b = xt.cross_entropy(*args, **kw), F.cross_entropy(*args, **kw)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{args[2:]} {kw}")

    def test_float64_matches_pytorch_in_float64(self):
        z = (torch.randn(6, 9, dtype=torch.float64) * 3).requires_grad_()
        y = torch.tensor([0, 8, -100, 3, 3, 1])
        for kw in ({}, {"label_smoothing": 0.1, "reduction": "sum"}, {"reduction": "none"}):
            a, b = xt.cross_entropy(z, y, **kw), F.cross_entropy(z, y, **kw)
            self.assertEqual(a.dtype, torch.float64)
            torch.testing.assert_close(a, b)
        # z-loss and softcap in float64 agree with the float32 kernel's.
        zf = z.detach().float()
        for kw in ({"z_loss_scale": 1e-3}, {"softcap": 5.0}, {"z_loss_scale": 1e-3, "softcap": 5.0, "reduction": "none"}):
            torch.testing.assert_close(xt.cross_entropy(z, y, **kw).float(), xt.cross_entropy(zf, y, **kw), rtol=1e-5, atol=1e-6)

    def test_no_gradient_work_without_grad_and_threads_follow_torch(self):
        z = torch.randn(8, 6, requires_grad=True)
        y = torch.randint(0, 6, (8,))
        with torch.no_grad():
            a = xt.cross_entropy(z, y)
        self.assertIsNone(a.grad_fn)
        torch.testing.assert_close(a, F.cross_entropy(z.detach(), y))
        self.assertIsNone(xt.cross_entropy(z.detach(), y).grad_fn)
        import xent.torch as mod

        self.assertEqual(mod._resolve(mod._threads(None)), torch.get_num_threads())
        self.assertEqual(mod._resolve(mod._threads(1)), 1)

    def test_inplace_backward_writes_the_gradient_over_the_logits(self):
        z = torch.randn(9, 13) * 3
        y = torch.tensor([0, 12, -100, 5, 5, 1, 2, 3, 7])
        for red in ("mean", "sum", "none"):
            ref = z.clone().requires_grad_()
            loss = F.cross_entropy(ref, y, reduction=red)
            up = torch.rand_like(loss) + 0.5
            g_ref, = torch.autograd.grad((loss * up).sum(), ref)
            x = z.clone().requires_grad_()
            logits = x * 1.0  # a non-leaf, as a model's logits
            ours = xt.cross_entropy(logits, y, reduction=red, inplace_backward=True)
            g, = torch.autograd.grad((ours * up).sum(), x)
            torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-6)
            # The logits' storage now holds the gradient (no allocation).
            torch.testing.assert_close(logits.detach(), g_ref, rtol=1e-5, atol=1e-6)
        # An op that saved the logits sees the write and refuses.
        x = z.clone().requires_grad_()
        logits = torch.tanh(x)  # tanh saves its output for its backward
        loss = xt.cross_entropy(logits, y, inplace_backward=True)
        with self.assertRaisesRegex(RuntimeError, "modified by an inplace operation"):
            loss.backward()

    def test_k_dimensional_inputs(self):
        z = torch.randn(2, 5, 3, 4) * 2
        y = torch.randint(0, 5, (2, 3, 4))
        y[0, 1, 2] = -100
        p = torch.softmax(torch.randn(2, 5, 3, 4), 1)
        for red in ("mean", "sum", "none"):
            self.compare(lambda: z.clone().requires_grad_(), y, reduction=red, label_smoothing=0.1)
            self.compare(lambda: z.clone().requires_grad_(), p, reduction=red)
        u = torch.randn(5, requires_grad=True)
        torch.testing.assert_close(xt.cross_entropy(u, torch.tensor(3)), F.cross_entropy(u, torch.tensor(3)))

    def test_linear_cross_entropy_without_grad_makes_no_gradients(self):
        h, w = torch.randn(6, 8, requires_grad=True), torch.randn(11, 8, requires_grad=True)
        y = torch.tensor([0, 10, 3, 3, -100, 1])
        with torch.no_grad():
            a = xt.linear_cross_entropy(h, w, y)
        self.assertIsNone(a.grad_fn)
        torch.testing.assert_close(a, F.cross_entropy(h.detach() @ w.detach().T, y))

    def test_torch_compile_fullgraph_on_a_small_gpt(self):
        import torch._dynamo as dynamo
        from torch._dynamo.utils import counters

        class Block(torch.nn.Module):
            def __init__(self, d):
                super().__init__()
                self.ln = torch.nn.LayerNorm(d)
                self.attn = torch.nn.MultiheadAttention(d, 2, batch_first=True)
                self.mlp = torch.nn.Sequential(torch.nn.Linear(d, 4 * d), torch.nn.GELU(), torch.nn.Linear(4 * d, d))

            def forward(self, x):
                h = self.ln(x)
                t = x.shape[1]
                mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
                x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
                return x + self.mlp(x)

        class GPT(torch.nn.Module):
            def __init__(self, vocab=50, d=16, t=8):
                super().__init__()
                self.tok, self.pos = torch.nn.Embedding(vocab, d), torch.nn.Embedding(t, d)
                self.block, self.head = Block(d), torch.nn.Linear(d, vocab)

            def forward(self, idx, targets, loss_fn):
                x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
                logits = self.head(self.block(x))
                return loss_fn(logits.view(-1, logits.shape[-1]), targets.view(-1))

        def train(loss_fn, compiled):
            torch.manual_seed(3)
            model = GPT()
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            step = model
            if compiled:
                step = torch.compile(model, fullgraph=True, backend="aot_eager")
            g = torch.Generator().manual_seed(5)
            losses = []
            for _ in range(4):
                idx = torch.randint(0, 50, (4, 8), generator=g)
                tgt = torch.randint(0, 50, (4, 8), generator=g)
                tgt[0, :2] = -100
                opt.zero_grad()
                loss = step(idx, tgt, loss_fn)
                loss.backward()
                opt.step()
                losses.append(loss.detach())
            return torch.stack(losses)

        dynamo.reset()
        counters.clear()
        loss_fn = lambda z, y: xt.cross_entropy(z, y, label_smoothing=0.1)  # noqa: E731
        compiled = train(loss_fn, True)
        self.assertEqual(sum(counters["graph_break"].values()), 0, dict(counters["graph_break"]))
        self.assertEqual(counters["stats"]["unique_graphs"], 1, "recompiled: " + str(dict(counters["stats"])))
        torch.testing.assert_close(compiled, train(loss_fn, False), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(compiled, train(lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1), False), rtol=1e-4, atol=1e-5)
        # The fused linear head too.
        dynamo.reset()
        counters.clear()
        h = torch.randn(12, 8, requires_grad=True)
        w = torch.randn(30, 8, requires_grad=True)
        y = torch.randint(0, 30, (12,))
        f = torch.compile(lambda h, w, y: xt.linear_cross_entropy(h, w, y), fullgraph=True, backend="aot_eager")
        a = f(h, w, y)
        ga = torch.autograd.grad(a, (h, w))
        b = F.cross_entropy(h @ w.T, y)
        gb = torch.autograd.grad(b, (h, w))
        torch.testing.assert_close(a, b)
        for u, v in zip(ga, gb):
            torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6)
        self.assertEqual(sum(counters["graph_break"].values()), 0)

    def test_vocab_parallel_over_gloo(self):
        import os
        import socket
        import tempfile

        import torch.multiprocessing as mp

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        for world, cuts in ((2, (0, 17, 40)), (3, (0, 25, 25, 40))):
            with tempfile.TemporaryDirectory() as d:
                mp.spawn(_vocab_parallel_rank, args=(world, cuts, port, d), nprocs=world, join=True)
                for r in range(world):
                    with open(os.path.join(d, f"{r}.ok")) as f:
                        self.assertEqual(f.read(), "ok")
            port += 1

    def test_the_vocab_parallel_example_runs_on_two_processes(self):
        import os
        import socket
        import subprocess
        import sys

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(port), os.path.join(root, "examples", "vocab_parallel.py")]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.count(": ok"), 2, r.stdout)

    def test_same_loss_curve_in_a_training_loop(self):
        def train(loss_fn):
            torch.manual_seed(1)
            model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))
            opt = torch.optim.SGD(model.parameters(), lr=0.5)
            x = torch.randn(64, 10)
            y = (x[:, 0] * 2 + x[:, 1]).clamp(-2, 2).add(2).long()
            curve = []
            for _ in range(40):
                opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                curve.append(loss.item())
            return curve

        ours, theirs = train(xt.cross_entropy), train(F.cross_entropy)
        self.assertLess(ours[-1], ours[0] * 0.7, "the loop trains")
        for a, b in zip(ours, theirs):
            self.assertAlmostEqual(a, b, places=4)


def _vocab_parallel_rank(rank, world, cuts, port, outdir):
    """One process of the vocab-parallel test: its shard of the classes
    against F.cross_entropy on the gathered logits, every option."""
    import os

    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        rows, classes = 12, cuts[-1]
        z = torch.randn(rows, classes) * 3
        y = torch.randint(0, classes, (rows,))
        y[3] = -100
        w = torch.rand(classes) + 0.2
        lo, hi = cuts[rank], cuts[rank + 1]
        for kw in ({}, {"reduction": "sum", "weight": w}, {"reduction": "none", "label_smoothing": 0.1},
                   {"label_smoothing": 0.2, "weight": w}, {"ignore_index": 5, "z_loss_scale": 1e-3}):
            y[3] = kw.get("ignore_index", -100)
            zl = kw.get("z_loss_scale", 0.0)
            ref_kw = {k: v for k, v in kw.items() if k != "z_loss_scale"}
            full = z.clone().requires_grad_()
            ref = F.cross_entropy(full, y, **ref_kw)
            if zl:
                lse = torch.logsumexp(full, 1)
                keep = (y != kw.get("ignore_index", -100)).float()
                ref = ref + zl * (lse * lse * keep).sum() / keep.sum()
            up = torch.rand_like(ref) + 0.5
            g_ref, = torch.autograd.grad((ref * up).sum(), full)
            shard = z[:, lo:hi].clone().requires_grad_()
            ours = xt.vocab_parallel_cross_entropy(shard, y, lo, classes, **kw)
            torch.testing.assert_close(ours, ref.detach(), rtol=1e-5, atol=1e-5)
            g, = torch.autograd.grad((ours * up).sum(), shard)
            torch.testing.assert_close(g, g_ref[:, lo:hi], rtol=1e-5, atol=1e-6)
        with open(os.path.join(outdir, f"{rank}.ok"), "w") as f:
            f.write("ok")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    unittest.main()
