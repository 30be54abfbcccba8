"""The ctypes binding with the standard library only (array.array buffers)."""

import array
import random
import unittest

from support import close, reference

import xent


def rand_logits(rng, n, scale=3.0):
    return array.array("f", [rng.uniform(-scale, scale) for _ in range(n)])


class Binding(unittest.TestCase):
    def setUp(self):
        self.rng = random.Random(7)

    def check_grad(self, got, want):
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertTrue(close(g, w), f"{g} vs {w}")

    def test_labels_every_reduction_and_option(self):
        rows, cols = 6, 11
        z = rand_logits(self.rng, rows * cols)
        labels = array.array("i", [3, 0, -100, 10, 5, 5])
        weight = array.array("f", [self.rng.uniform(0.2, 2.0) for _ in range(cols)])
        for reduction in ("mean", "sum", "none"):
            for kw in ({}, {"weight": weight}, {"label_smoothing": 0.3}, {"weight": weight, "label_smoothing": 0.1}):
                ref_kw = {"weight": list(kw["weight"]) if "weight" in kw else None,
                          "smoothing": kw.get("label_smoothing", 0.0)}
                want_loss, want_grad = reference(list(z), rows, cols, labels=list(labels), reduction=reduction,
                                                 **ref_kw)
                loss = xent.cross_entropy(z, labels, classes=cols, reduction=reduction, **kw)
                loss2, grad = xent.cross_entropy_forward_backward(z, labels, classes=cols, reduction=reduction, **kw)
                if reduction == "none":
                    for a, b in zip(loss, want_loss):
                        self.assertTrue(close(a, b), (reduction, kw, a, b))
                    self.assertEqual(list(loss), list(loss2))
                else:
                    self.assertTrue(close(loss, want_loss), (reduction, kw, loss, want_loss))
                    self.assertEqual(loss, loss2)
                self.check_grad(grad, want_grad)
                # The backward call with upstream gradient 1 is the same gradient.
                back = xent.cross_entropy_backward(z, labels, 1.0, classes=cols, reduction=reduction, **kw)
                self.check_grad(back, want_grad)

    def test_probability_targets(self):
        rows, cols = 4, 9
        z = rand_logits(self.rng, rows * cols)
        t = [self.rng.random() for _ in range(rows * cols)]
        probs = array.array("f", t)
        want_loss, want_grad = reference(list(z), rows, cols, probs=list(probs), smoothing=0.2)
        loss, grad = xent.cross_entropy_forward_backward(z, probs, classes=cols, label_smoothing=0.2)
        self.assertTrue(close(loss, want_loss))
        self.check_grad(grad, want_grad)

    def test_lse_argmax_and_in_place(self):
        z = array.array("f", [1.0, 4.0, 2.0, -1.0, -3.0, 0.5])
        labels = array.array("i", [1, 2])
        loss, lse, argmax = xent.cross_entropy(z, labels, classes=3, return_lse=True, return_argmax=True)
        self.assertEqual(list(argmax), [1, 2])
        self.assertTrue(close(lse[0], 4.0 + __import__("math").log(1 + 2.718281828459045**-3 + 2.718281828459045**-2)))
        copy = array.array("f", z)
        loss2, grad = xent.cross_entropy_forward_backward(copy, labels, classes=3, out=copy)
        self.assertIs(grad, copy)
        self.assertEqual(loss, loss2)
        _, separate = xent.cross_entropy_forward_backward(z, labels, classes=3)
        self.assertEqual(list(copy), list(separate))

    def test_bf16_equals_float32_on_widened_values(self):
        rows, cols = 3, 40
        z = rand_logits(self.rng, rows * cols)
        bits = array.array("H", [(array.array("f", [v]).tobytes()[2] | array.array("f", [v]).tobytes()[3] << 8)
                                 for v in z])
        widened = array.array("f", [array.array("f", bytes([0, 0, b & 0xFF, b >> 8]))[0] for b in bits])
        labels = array.array("i", [0, 39, 17])
        loss16, g16 = xent.cross_entropy_forward_backward(bits, labels, classes=cols, half="bf16")
        loss32, g32 = xent.cross_entropy_forward_backward(widened, labels, classes=cols)
        self.assertEqual(loss16, loss32)
        self.assertEqual(g16.typecode, "H")
        for h, f in zip(g16, g32):
            back = array.array("f", bytes([0, 0, h & 0xFF, h >> 8]))[0]
            self.assertLessEqual(abs(back - f), abs(f) / 128 + 1e-30)

    def test_errors_carry_status_and_message_and_write_nothing(self):
        z = array.array("f", [0.0] * 6)
        out = array.array("f", [7.0] * 6)
        with self.assertRaises(xent.XentError) as e:
            xent.cross_entropy_forward_backward(z, array.array("i", [0, 3]), classes=3, out=out)
        self.assertNotEqual(e.exception.status, 0)
        self.assertIn("label 3 at row 1", e.exception.message)
        self.assertEqual(list(out), [7.0] * 6, "outputs untouched on failure")
        with self.assertRaises(xent.XentError) as e:
            xent.cross_entropy(z, array.array("i", [0, 1]), classes=3, label_smoothing=1.5)
        self.assertIn("label_smoothing", e.exception.message)

    def test_python_side_checks(self):
        z = array.array("f", [0.0] * 6)
        with self.assertRaises(TypeError):
            xent.cross_entropy(array.array("d", [0.0] * 6), array.array("i", [0, 1]), classes=3)
        with self.assertRaises(ValueError):
            xent.cross_entropy(z, array.array("i", [0, 1, 2]), classes=3)  # 3 labels for 2 rows
        with self.assertRaises(ValueError):
            xent.cross_entropy(z, array.array("i", [0, 1]), classes=3, weight=array.array("f", [1.0, 1.0]))
        with self.assertRaises(ValueError):
            xent.cross_entropy(z, array.array("i", [0, 1]), classes=4)  # 6 values are not rows of 4
        with self.assertRaises(ValueError):
            xent.cross_entropy(z, array.array("i", [0, 1]), classes=3, reduction="avg")
        with self.assertRaises(TypeError):
            xent.cross_entropy(array.array("H", [0] * 6), array.array("i", [0, 1]), classes=3)  # which 16-bit?
        with self.assertRaises(ValueError):
            xent.cross_entropy_forward_backward(z, array.array("i", [0, 1]), classes=3, out=memoryview(array.array("f", [0.0] * 6)).toreadonly())

    def test_fused_linear(self):
        rows, dim, classes = 5, 4, 7
        h = rand_logits(self.rng, rows * dim, 1.0)
        w = rand_logits(self.rng, classes * dim, 1.0)
        b = rand_logits(self.rng, classes, 1.0)
        labels = array.array("i", [0, 6, -100, 3, 3])
        z = [sum(h[i * dim + k] * w[j * dim + k] for k in range(dim)) + b[j] for i in range(rows) for j in range(classes)]
        want_loss, want_dz = reference(z, rows, classes, labels=list(labels))
        loss = xent.linear_cross_entropy(h, w, labels, b, dim=dim)
        self.assertTrue(close(loss, want_loss))
        loss2, gh, gw, gb = xent.linear_cross_entropy_forward_backward(h, w, labels, b, dim=dim)
        self.assertEqual(loss, loss2)
        want_gh = [sum(want_dz[i * classes + j] * w[j * dim + k] for j in range(classes)) for i in range(rows) for k in range(dim)]
        want_gw = [sum(want_dz[i * classes + j] * h[i * dim + k] for i in range(rows)) for j in range(classes) for k in range(dim)]
        want_gb = [sum(want_dz[i * classes + j] for i in range(rows)) for j in range(classes)]
        self.check_grad(gh, want_gh)
        self.check_grad(gw, want_gw)
        self.check_grad(gb, want_gb)

    def test_readme_python_snippets(self):
        import os
        import re

        readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
        with open(readme, encoding="utf-8") as f:
            blocks = re.findall(r"^```python\n(.*?)^```$", f.read(), re.S | re.M)
        self.assertGreaterEqual(len(blocks), 2)
        for block in blocks:
            needs = [m for m in ("torch", "numpy") if re.search(rf"^import {m}", block, re.M)]
            try:
                for m in needs:
                    __import__(m)
            except ImportError:
                print(f"README snippet skipped: {', '.join(needs)} not installed")
                continue
            exec(compile(block, "README.md", "exec"), {})

    def test_shards_equal_the_unsharded_call(self):
        rows, cols = 5, 17
        z = rand_logits(self.rng, rows * cols)
        labels = array.array("i", [0, 16, -100, 8, 9])
        weight = array.array("f", [self.rng.uniform(0.5, 2.0) for _ in range(cols)])
        kw = {"weight": weight, "label_smoothing": 0.1}
        want_loss, want_grad = xent.cross_entropy_forward_backward(z, labels, classes=cols, **kw)
        bounds = [(0, 6), (6, 17)]  # uneven shards
        shards = [array.array("f", [z[i * cols + j] for i in range(rows) for j in range(a, b)]) for a, b in bounds]
        stats = [xent.shard_stats(s, labels, a, cols, classes=b - a, **kw) for s, (a, b) in zip(shards, bounds)]
        merged = xent.shard_stats_merge(stats[0], array.array("f", stats[1]))
        loss = xent.shard_loss(merged, labels, cols, **kw)
        self.assertTrue(close(loss, want_loss), (loss, want_loss))
        for s, (a, b) in zip(shards, bounds):
            g = xent.shard_backward(s, labels, a, cols, merged, classes=b - a, **kw)
            want = [want_grad[i * cols + j] for i in range(rows) for j in range(a, b)]
            self.check_grad(g, want)
        with self.assertRaises(ValueError):
            xent.shard_loss(array.array("f", [0.0] * 4), labels, cols)  # not 5 floats per row

    def test_version(self):
        self.assertRegex(xent.version(), r"^\d+\.\d+\.\d+$")
        self.assertIn(xent.active_isa(), ("scalar", "neon", "avx2", "avx512"))


if __name__ == "__main__":
    unittest.main()


class Loader(unittest.TestCase):
    """Where the library is looked for, on each platform's file name (the
    Windows branch runs here on its path logic: xent.dll under Wine is
    `make test-windows`'s C side)."""

    def test_names_per_platform(self):
        self.assertEqual(xent._names("win32"), ["xent.dll"])
        self.assertEqual(xent._names("darwin"), ["libxent.dylib"])
        self.assertEqual(xent._names("linux"), ["libxent.so"])

    def test_search_order(self):
        import os
        import tempfile

        with tempfile.TemporaryDirectory() as root:
            pkg = os.path.join(root, "python", "xent")
            os.makedirs(pkg)
            for d in ("target/release", "elsewhere/release"):
                os.makedirs(os.path.join(root, d))
                open(os.path.join(root, d, "xent.dll"), "w").close()
            find = xent._find_library
            # The source tree's target/release, then $CARGO_TARGET_DIR/release
            # (relative to the tree, or absolute).
            self.assertEqual(find({}, pkg, "win32"), os.path.join(root, "target", "release", "xent.dll"))
            self.assertEqual(find({"CARGO_TARGET_DIR": "elsewhere"}, pkg, "win32"),
                             os.path.join(root, "elsewhere", "release", "xent.dll"))
            self.assertEqual(find({"CARGO_TARGET_DIR": os.path.join(root, "elsewhere")}, pkg, "win32"),
                             os.path.join(root, "elsewhere", "release", "xent.dll"))
            # Next to the package (where pip puts it) comes first.
            open(os.path.join(pkg, "xent.dll"), "w").close()
            self.assertEqual(find({}, pkg, "win32"), os.path.join(pkg, "xent.dll"))
            # $XENT_LIBRARY wins over everything.
            self.assertEqual(find({"XENT_LIBRARY": "/x/y.dll"}, pkg, "win32"), "/x/y.dll")
            # A Linux name is not a Windows one.
            with self.assertRaises(OSError):
                find({}, os.path.join(root, "nowhere", "xent"), "linux")
