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


if __name__ == "__main__":
    unittest.main()
