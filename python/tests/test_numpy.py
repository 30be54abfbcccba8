"""The binding on NumPy arrays (skipped, saying so, without NumPy)."""

import unittest

from support import close, reference

import xent

try:
    import numpy as np
except ImportError:  # pragma: no cover - depends on the machine
    np = None


@unittest.skipIf(np is None, "NumPy is not installed: skipping the NumPy tests")
class NumPy(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(3)

    def test_strided_rows_int64_labels_and_numpy_outputs(self):
        wide = self.rng.standard_normal((8, 20)).astype(np.float32) * 4
        z = wide[:, :13]  # rows 20 apart: no copy
        labels = np.array([0, 12, -100, 5, 5, 1, 2, 3])  # int64, NumPy's default
        loss, grad = xent.cross_entropy_forward_backward(z, labels, reduction="none")
        self.assertIsInstance(loss, np.ndarray)
        self.assertEqual(grad.shape, (8, 13))
        want_loss, want_grad = reference([float(v) for v in z.ravel()], 8, 13, labels=labels.tolist(), reduction="none")
        for a, b in zip(loss, want_loss):
            self.assertTrue(close(float(a), b))
        for a, b in zip(grad.ravel(), want_grad):
            self.assertTrue(close(float(a), b))
        # In place into the strided view: only its 13 columns are written.
        before = wide[:, 13:].copy()
        loss2, g = xent.cross_entropy_forward_backward(z, labels, reduction="none", out=z)
        self.assertIs(g, z)
        np.testing.assert_array_equal(loss2, loss)
        np.testing.assert_array_equal(z, grad)
        np.testing.assert_array_equal(wide[:, 13:], before)

    def test_float64_and_integer_class_weights_are_converted(self):
        z = self.rng.standard_normal((6, 7)).astype(np.float32) * 3
        labels = np.array([0, 6, 3, 3, -100, 1])
        w64 = self.rng.uniform(0.2, 3.0, 7)  # float64, NumPy's default
        w32 = w64.astype(np.float32)
        for kw in ({"reduction": "mean"}, {"reduction": "none", "label_smoothing": 0.2}):
            want = xent.cross_entropy_forward_backward(z, labels, weight=w32, **kw)
            got = xent.cross_entropy_forward_backward(z, labels, weight=w64, **kw)
            np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))
            np.testing.assert_array_equal(got[1], want[1])
            ref_loss, _ = reference([float(v) for v in z.ravel()], 6, 7, labels=labels.tolist(),
                                    weight=[float(v) for v in w32], reduction=kw["reduction"],
                                    smoothing=kw.get("label_smoothing", 0.0))
            for a, b in zip(np.atleast_1d(got[0]), ref_loss if kw["reduction"] == "none" else [ref_loss]):
                self.assertTrue(close(float(a), b))
        ints = np.array([1, 2, 1, 1, 3, 1, 2])
        self.assertEqual(xent.cross_entropy(z, labels, weight=ints), xent.cross_entropy(z, labels, weight=ints.astype(np.float32)))
        with self.assertRaises(ValueError):
            xent.cross_entropy(z, labels, weight=w64[:5])

    def test_float16_and_bf16_logits(self):
        z = (self.rng.standard_normal((4, 33)) * 3).astype(np.float16)
        labels = np.array([1, 2, 3, 32], dtype=np.int32)
        l16, g16 = xent.cross_entropy_forward_backward(z, labels)
        l32, g32 = xent.cross_entropy_forward_backward(z.astype(np.float32), labels)
        self.assertEqual(l16, l32)
        self.assertEqual(g16.dtype, np.float16)
        np.testing.assert_array_equal(g16, g32.astype(np.float16))
        bits = (z.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        lb, gb = xent.cross_entropy_forward_backward(bits, labels, half="bf16")
        widened = (bits.astype(np.uint32) << 16).view(np.float32)
        lw, _ = xent.cross_entropy_forward_backward(widened, labels)
        self.assertEqual(lb, lw)
        self.assertEqual(gb.dtype, np.uint16)

    def test_read_only_input_and_wrong_dtypes(self):
        z = np.zeros((2, 3), dtype=np.float32)
        z.flags.writeable = False
        self.assertAlmostEqual(xent.cross_entropy(z, np.array([0, 1])), np.log(3), places=6)
        with self.assertRaises(TypeError):
            xent.cross_entropy(np.zeros((2, 3)), np.array([0, 1]))  # float64
        with self.assertRaises(ValueError):
            xent.cross_entropy(np.zeros((2, 3), dtype=np.float32)[::-1], np.array([0, 1]))  # negative stride
        with self.assertRaises(ValueError):
            xent.cross_entropy_forward_backward(np.zeros((2, 3), dtype=np.float32), np.array([0, 1]), out=z)


if __name__ == "__main__":
    unittest.main()
