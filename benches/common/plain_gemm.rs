//! The unfused baseline of the fused linear call, shared by `benches/linear.rs`
//! and `examples/linear_vs_gemms.rs`: plain matrixmultiply products.

/// `c ← a·b` for row-major `a` (m×k, or its transpose when `ta`) and `b`
/// (k×n, or its transpose when `tb`).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(m: usize, k: usize, n: usize, a: &[f32], ta: bool, b: &[f32], tb: bool, c: &mut [f32]) {
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the assert above bounds every access of the product.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// The three products the unfused computation needs for `rows × dim`
/// hidden states and a `classes × dim` weight: logits = H·Wᵀ (into
/// `logits`, standing in for their gradient G), grad_hidden = G·W,
/// grad_weight = Gᵀ·H.
pub fn three_products(
    (rows, dim, classes): (usize, usize, usize),
    hidden: &[f32],
    weight: &[f32],
    logits: &mut [f32],
    grad_hidden: &mut [f32],
    grad_weight: &mut [f32],
) {
    sgemm(rows, dim, classes, hidden, false, weight, true, logits);
    sgemm(rows, classes, dim, logits, false, weight, false, grad_hidden);
    sgemm(classes, rows, dim, logits, true, hidden, false, grad_weight);
}

/// Deterministic values in `[-scale, scale)`.
pub fn fill(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ((x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}
