//! The float64 oracle: PyTorch's `F.cross_entropy` written out element by
//! element, plus Liger-Kernel's z-loss and softcap. Independent of xent's
//! code: no shared helpers, no fused tricks, log-softmax taken literally.

use super::Case;
use xent::loss::Reduction;

/// Reference results: reduced loss (or per-row losses), lse, argmax and the
/// gradient of the reduced loss (upstream 1) at every logit position.
#[derive(Clone, Debug)]
pub struct Out {
    pub loss: Vec<f64>,
    pub lse: Vec<f64>,
    pub argmax: Vec<usize>,
    /// rows × cols, dense.
    pub grad: Vec<f64>,
    /// Per row, the size of the terms whose difference is the gradient
    /// (`scale·(Σc·p_j + c_j)`): f32 cancellation error is relative to it.
    pub grad_terms: Vec<f64>,
}

fn softcap(z: f64, cap: f64) -> (f64, f64) {
    if cap > 0.0 {
        let t = (z / cap).tanh();
        (cap * t, 1.0 - t * t)
    } else {
        (z, 1.0)
    }
}

/// `c · logp` with the convention `0 · (−inf) = 0` (a class without mass
/// contributes nothing). `0 · NaN` stays NaN: a row whose every logit is
/// −inf has no log-probabilities (lse = −inf), as in PyTorch.
fn times(c: f64, logp: f64) -> f64 {
    if c == 0.0 && logp == f64::NEG_INFINITY { 0.0 } else { c * logp }
}

pub fn compute(c: &Case) -> Out {
    let (n, k) = (c.rows, c.cols);
    let cap = f64::from(c.softcap);
    let eps = f64::from(c.smoothing);
    let s = f64::from(c.z_loss);
    let w = |j: usize| c.weights.as_ref().map_or(1.0, |w| f64::from(w[j]));
    let mut row_ce = vec![0.0; n];
    let mut row_z = vec![0.0; n];
    let mut lse = vec![0.0; n];
    let mut argmax = vec![0; n];
    let mut dce = vec![0.0; n * k]; // d ce_i / d z_ij
    let mut dz = vec![0.0; n * k]; // d zloss_i / d z_ij
    let mut kept = vec![false; n];
    let mut terms = vec![0.0; n];
    let mut ce_den = 0.0;
    let mut z_den = 0.0;
    for i in 0..n {
        let raw: Vec<f64> = (0..k).map(|j| f64::from(c.logits[i * c.stride + j])).collect();
        // argmax of raw logits: first NaN, else first maximum.
        argmax[i] = raw.iter().position(|x| x.is_nan()).unwrap_or_else(|| {
            let m = raw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            raw.iter().position(|&x| x == m).unwrap_or(0)
        });
        let zc: Vec<(f64, f64)> = raw.iter().map(|&z| softcap(z, cap)).collect();
        let z: Vec<f64> = zc.iter().map(|p| p.0).collect();
        let m = z.iter().cloned().filter(|x| !x.is_nan()).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|&x| (x - m).exp()).sum();
        let l = m + sum.ln();
        lse[i] = l;
        let logp: Vec<f64> = z.iter().map(|&x| x - l).collect();
        let p: Vec<f64> = logp.iter().map(|&x| x.exp()).collect();
        // Per-class target mass c_j, so that ce = -Σ c_j logp_j.
        let coef: Vec<f64> = if c.soft {
            (0..k).map(|j| w(j) * ((1.0 - eps) * f64::from(c.probs[i * k + j]) + eps / k as f64)).collect()
        } else {
            let y = c.labels[i];
            if y == c.ignore_index {
                continue;
            }
            let y = y as usize;
            (0..k).map(|j| eps / k as f64 * w(j) + if j == y { (1.0 - eps) * w(y) } else { 0.0 }).collect()
        };
        kept[i] = true;
        z_den += 1.0;
        ce_den += if c.soft { 1.0 } else { w(c.labels[i] as usize) };
        row_ce[i] = -(0..k).map(|j| times(coef[j], logp[j])).sum::<f64>();
        row_z[i] = s * l * l;
        let total: f64 = coef.iter().sum();
        terms[i] = total.abs() + 2.0 * s * l.abs();
        for j in 0..k {
            dce[i * k + j] = (total * p[j] - coef[j]) * zc[j].1;
            dz[i * k + j] = 2.0 * s * l * p[j] * zc[j].1;
        }
        let nan_row = raw.iter().any(|x| x.is_nan()) || (cap == 0.0 && raw.contains(&f64::INFINITY));
        if nan_row {
            row_ce[i] = f64::NAN;
            row_z[i] = f64::NAN;
            lse[i] = f64::NAN;
            for j in 0..k {
                dce[i * k + j] = f64::NAN;
                dz[i * k + j] = f64::NAN;
            }
        }
    }
    if c.soft {
        ce_den = n as f64;
        z_den = n as f64;
    }
    let (ce_k, z_k) = match c.reduction {
        Reduction::Mean => (1.0 / ce_den, 1.0 / z_den),
        _ => (1.0, 1.0),
    };
    let loss = match c.reduction {
        Reduction::None => (0..n).map(|i| row_ce[i] + row_z[i]).collect(),
        _ => {
            let ce: f64 = row_ce.iter().sum();
            let z: f64 = row_z.iter().sum();
            let zpart = if s > 0.0 { z * z_k } else { 0.0 };
            vec![ce * ce_k + zpart]
        }
    };
    let grad = (0..n * k).map(|e| if kept[e / k] { dce[e] * ce_k + dz[e] * z_k } else { 0.0 }).collect();
    let grad_terms = (0..n).map(|i| terms[i] * ce_k.max(z_k)).collect();
    Out { loss, lse, argmax, grad, grad_terms }
}
