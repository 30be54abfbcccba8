//! bfloat16 and binary16 logits: the conversions against an independent
//! oracle (float64 arithmetic, nearest neighbour with ties to even) on every
//! path, and the 16-bit calls against the float32 calls on the widened
//! logits: loss, lse and argmax bit-identical, the gradient equal to the
//! float32 gradient rounded to nearest even, on every path, thread count and
//! in place; NaN, ±inf, subnormal and ±1e4 inputs included.

#![allow(clippy::needless_range_loop)]

mod support;

use support::*;
use xent::kernels::{Half, Isa, narrow_lanes, widen_lanes};
use xent::loss::*;

const KINDS: [Half; 2] = [Half::Bf16, Half::F16];

// ---- the oracle: formats described by their parameters, values in f64 ----

/// (exponent bits, mantissa bits) of a format.
fn format(kind: Half) -> (u32, u32) {
    match kind {
        Half::Bf16 => (8, 7),
        Half::F16 => (5, 10),
    }
}

/// The value of a 16-bit pattern (NaN for every NaN pattern).
fn value(kind: Half, h: u16) -> f64 {
    let (eb, mb) = format(kind);
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let e = (u32::from(h) >> mb) & ((1 << eb) - 1);
    let m = f64::from(u32::from(h) & ((1 << mb) - 1));
    let bias = (1 << (eb - 1)) - 1;
    let (emax, scale) = ((1 << eb) - 1, 2f64.powi(mb as i32));
    if e == emax {
        return if m == 0.0 { sign * f64::INFINITY } else { f64::NAN };
    }
    if e == 0 {
        return sign * m / scale * 2f64.powi(1 - bias);
    }
    sign * (1.0 + m / scale) * 2f64.powi(e as i32 - bias)
}

/// The nearest 16-bit value to `x` (ties to the even pattern; beyond the
/// largest finite value by half an ulp or more: infinity). NaN gives `None`.
fn nearest(kind: Half, x: f32) -> Option<u16> {
    if x.is_nan() {
        return None;
    }
    let sign = if x.is_sign_negative() { 0x8000u16 } else { 0 };
    let a = f64::from(x).abs();
    let (eb, mb) = format(kind);
    let inf = (((1u32 << eb) - 1) << mb) as u16;
    if a.is_infinite() {
        return Some(sign | inf);
    }
    // Positive patterns are ordered like their values: binary search for the
    // last finite pattern ≤ a, then compare with the next one up (whose value
    // for the largest finite is "one ulp more", i.e. the overflow threshold).
    let (mut lo, mut hi) = (0u16, inf); // value(lo) <= a < value(hi) (hi inf as 2^emax)
    let next_value =
        |p: u16| if p == inf { value(kind, p - 1) + (value(kind, p - 1) - value(kind, p - 2)) } else { value(kind, p) };
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if value(kind, mid) <= a {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let (dl, dh) = (a - value(kind, lo), next_value(hi) - a);
    let pick = if dl < dh || (dl == dh && lo % 2 == 0) { lo } else { hi };
    Some(sign | pick)
}

#[test]
fn widening_is_exact_on_every_path() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    for kind in KINDS {
        let mut portable = vec![0.0f32; all.len()];
        widen_lanes(Isa::Scalar, kind, &all, &mut portable);
        for_each_isa(|isa| {
            let mut out = vec![0.0f32; all.len()];
            widen_lanes(isa, kind, &all, &mut out);
            // NaNs included, every path gives the portable path's bits.
            let differ = out.iter().zip(&portable).position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(differ, None, "{kind:?} on {}", isa.name());
            for (&h, &x) in all.iter().zip(&out) {
                let want = value(kind, h);
                if want.is_nan() {
                    assert!(x.is_nan(), "{kind:?} {h:#06x} on {}: {x}", isa.name());
                } else {
                    assert_eq!(f64::from(x), want, "{kind:?} {h:#06x} on {}", isa.name());
                    assert_eq!(x.is_sign_negative(), h >> 15 == 1, "sign of {h:#06x}");
                }
            }
        });
    }
}

/// Float32 inputs for rounding: every exponent and sign with the mantissa
/// patterns where rounding decides (ties, one off a tie, all ones), plus
/// random ones.
fn rounding_inputs() -> Vec<f32> {
    let mut rng = Rng(99);
    let tails: Vec<u32> = vec![0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x7fff, 0x8000, 0x8001, 0xffff];
    let mut v = Vec::new();
    for high in 0..(1u32 << 16) {
        for &t in &tails {
            v.push(f32::from_bits((high << 16) | t));
        }
        v.push(f32::from_bits((high << 16) | (rng.next_u64() as u32 & 0xffff)));
    }
    for _ in 0..200_000 {
        v.push(f32::from_bits(rng.next_u64() as u32));
    }
    v
}

#[test]
fn rounding_is_nearest_even_on_every_path() {
    let inputs = rounding_inputs();
    for kind in KINDS {
        let want: Vec<Option<u16>> = inputs.iter().map(|&x| nearest(kind, x)).collect();
        let mut reference = vec![0u16; inputs.len()];
        narrow_lanes(Isa::Scalar, kind, &inputs, &mut reference, false);
        for_each_isa(|isa| {
            let mut out = vec![0u16; inputs.len()];
            narrow_lanes(isa, kind, &inputs, &mut out, false);
            // The streaming stores of large gradients give the same values.
            let mut streamed = vec![0u16; inputs.len()];
            narrow_lanes(isa, kind, &inputs, &mut streamed, true);
            assert_eq!(streamed, out, "{kind:?}: streaming stores changed a value on {}", isa.name());
            // Destinations at every 2-byte offset from a 64-byte boundary
            // (the vector paths align their streaming stores with a head).
            for skip in [1, 7, 31] {
                let mut shifted = vec![0u16; inputs.len()];
                narrow_lanes(isa, kind, &inputs[skip..], &mut shifted[skip..], true);
                assert_eq!(shifted[skip..], out[skip..], "{kind:?}: offset {skip} changed a value on {}", isa.name());
            }
            for (i, (&x, &h)) in inputs.iter().zip(&out).enumerate() {
                match want[i] {
                    Some(w) => assert_eq!(h, w, "{kind:?} {:#010x} ({x:e}) on {}", x.to_bits(), isa.name()),
                    None => assert!(value(kind, h).is_nan(), "{kind:?} NaN {:#010x} gave {h:#06x}", x.to_bits()),
                }
                // NaNs too: every path gives the same pattern.
                assert_eq!(h, reference[i], "{kind:?} {:#010x}: {} differs from scalar", x.to_bits(), isa.name());
            }
        });
    }
}

// ---- the 16-bit calls against the float32 calls on widened logits ----

fn to_half(kind: Half, x: &[f32]) -> Vec<u16> {
    let mut h = vec![0u16; x.len()];
    narrow_lanes(Isa::Scalar, kind, x, &mut h, false);
    h
}

fn to_f32(kind: Half, h: &[u16]) -> Vec<f32> {
    h.iter().map(|&p| value(kind, p) as f32).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Logits as 16-bit patterns (with stride gaps) and the case of their
/// float32 values, with interesting values mixed in.
fn make(rng: &mut Rng, kind: Half, rows: usize, cols: usize) -> (Vec<u16>, Case) {
    let stride = cols + rng.pick(&[0, 0, 3, 16]);
    let len = if rows == 0 { 0 } else { (rows - 1) * stride + cols };
    let scale = rng.pick(&[1.0, 4.0, 30.0]);
    let offset = rng.pick(&[0.0, 0.0, 1e4, -1e4]);
    let mut x: Vec<f32> = (0..len).map(|_| (offset + scale * rng.normal()) as f32).collect();
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, -3e-39, 6e-8, 0.0, -0.0];
    for i in 0..rows {
        if rng.below(4) == 0 {
            x[i * stride + rng.below(cols)] = rng.pick(&specials);
        }
    }
    let h = to_half(kind, &x);
    let ignore_index = rng.pick(&[-100, 0]);
    let labels = (0..rows).map(|_| if rng.below(6) == 0 { ignore_index } else { rng.below(cols) as i32 }).collect();
    let case = Case {
        rows,
        cols,
        stride,
        logits: to_f32(kind, &h),
        labels,
        probs: vec![],
        soft: false,
        weights: (rng.below(3) == 0).then(|| (0..cols).map(|_| 0.2 + rng.unit() as f32).collect()),
        reduction: rng.pick(&[Reduction::Mean, Reduction::Sum, Reduction::None]),
        ignore_index,
        smoothing: rng.pick(&[0.0, 0.1]),
        z_loss: rng.pick(&[0.0, 1e-4]),
        softcap: rng.pick(&[0.0, 0.0, 20.0]),
    };
    (h, case)
}

struct Out16 {
    loss: Vec<f32>,
    lse: Vec<f32>,
    argmax: Vec<i32>,
    grad: Vec<u16>,
}

/// How a test makes a 16-bit element from its bits and reads them back.
type Codec<T> = (fn(u16) -> T, fn(T) -> u16);

/// The fused call on 16-bit logits of type `T` (made by `wrap`, read back by `bits16`).
fn fused16<T: Element>(c: &Case, h: &[u16], (wrap, bits16): Codec<T>, in_place: bool, threads: u32) -> Out16 {
    let logits: Vec<T> = h.iter().map(|&p| wrap(p)).collect();
    let mut grad: Vec<T> = if in_place { logits.clone() } else { vec![wrap(0x5555); h.len()] };
    let mut loss = vec![0.0; c.loss_len()];
    let (mut lse, mut argmax) = (vec![0.0; c.rows], vec![0; c.rows]);
    let mut o = c.options();
    o.num_threads = threads;
    let out = ForwardOut { loss: &mut loss, lse: Some(&mut lse), argmax: Some(&mut argmax) };
    let g = MatrixMut { data: &mut grad, rows: c.rows, cols: c.cols, stride: c.stride };
    let io = if in_place {
        LogitsGrad::InPlace(g)
    } else {
        LogitsGrad::Separate { logits: Matrix { data: &logits, rows: c.rows, cols: c.cols, stride: c.stride }, grad: g }
    };
    forward_backward(io, c.targets(), &o, out).expect("valid");
    let grad = grad.into_iter().map(bits16).collect();
    Out16 { loss, lse, argmax, grad }
}

fn check_case(kind: Half, c: &Case, h: &[u16]) {
    let f = fused(c, false, |o| o.num_threads = 1);
    let want_grad: Vec<u16> = to_half(kind, &f.grad);
    for threads in [1, 3] {
        for in_place in [false, true] {
            let g = match kind {
                Half::Bf16 => fused16(c, h, (Bf16, |b| b.0), in_place, threads),
                Half::F16 => fused16(c, h, (F16, |b| b.0), in_place, threads),
            };
            let what = format!("{kind:?} rows {} cols {} threads {threads} in place {in_place}", c.rows, c.cols);
            assert_eq!(bits(&g.loss), bits(&f.loss), "loss: {what}");
            assert_eq!(bits(&g.lse), bits(&f.lse), "lse: {what}");
            assert_eq!(g.argmax, f.argmax, "argmax: {what}");
            for i in 0..c.rows {
                let r = i * c.stride..i * c.stride + c.cols;
                assert_eq!(g.grad[r.clone()], want_grad[r], "grad row {i}: {what}");
                if !in_place && i + 1 < c.rows {
                    assert!(g.grad[i * c.stride + c.cols..(i + 1) * c.stride].iter().all(|&p| p == 0x5555), "padding");
                }
            }
        }
    }
    // Forward alone: the same loss, lse and argmax.
    let logits_bf: Vec<Bf16> = h.iter().map(|&p| Bf16(p)).collect();
    let logits_f16: Vec<F16> = h.iter().map(|&p| F16(p)).collect();
    let mut loss = vec![0.0; c.loss_len()];
    let (mut lse, mut argmax) = (vec![0.0; c.rows], vec![0; c.rows]);
    let out = ForwardOut { loss: &mut loss, lse: Some(&mut lse), argmax: Some(&mut argmax) };
    let o = c.options();
    match kind {
        Half::Bf16 => {
            forward(Matrix { data: &logits_bf, rows: c.rows, cols: c.cols, stride: c.stride }, c.targets(), &o, out)
        }
        Half::F16 => {
            forward(Matrix { data: &logits_f16, rows: c.rows, cols: c.cols, stride: c.stride }, c.targets(), &o, out)
        }
    }
    .expect("valid");
    assert_eq!(bits(&loss), bits(&f.loss), "forward loss");
    assert_eq!(bits(&lse), bits(&f.lse), "forward lse");
    assert_eq!(argmax, f.argmax, "forward argmax");
}

#[test]
fn half_calls_equal_float32_calls_on_widened_logits_on_every_path() {
    for kind in KINDS {
        for_each_isa(|isa| {
            let mut rng = Rng(0x16 ^ isa as u64 ^ (kind as u64) << 8);
            for cols in [1, 2, 7, 15, 16, 17, 33, 64, 65, 100, 1000, 1025, 2049] {
                let rows = rng.pick(&[0, 1, 5, 37]);
                let (h, c) = make(&mut rng, kind, rows, cols);
                check_case(kind, &c, &h);
            }
        });
    }
}

#[test]
fn half_calls_on_large_shapes_and_many_blocks() {
    let mut rng = Rng(5);
    for kind in KINDS {
        // 100 x 42000 is past the size where gradients are streamed to memory.
        for (rows, cols) in [(3, 40_000), (5000, 10), (700, 129), (100, 42_000)] {
            let (h, c) = make(&mut rng, kind, rows, cols);
            check_case(kind, &c, &h);
        }
    }
}

#[test]
fn half_backward_is_the_float32_backward_rounded() {
    let mut rng = Rng(6);
    for kind in KINDS {
        let (h, c) = make(&mut rng, kind, 20, 300);
        let mut want = c.grad_buffer();
        let g1 = vec![1.0f32; c.loss_len()];
        let up = Upstream { grad_loss: &g1, lse: None };
        backward(c.logits_grad(&mut want, false), c.targets(), &c.options(), up).expect("valid");
        let want = to_half(kind, &want);
        let logits: Vec<F16> = h.iter().map(|&p| F16(p)).collect();
        let mut grad = logits.clone();
        if kind == Half::F16 {
            let m = MatrixMut { data: &mut grad, rows: c.rows, cols: c.cols, stride: c.stride };
            backward(LogitsGrad::InPlace(m), c.targets(), &c.options(), up).expect("valid");
            for i in 0..c.rows {
                for j in 0..c.cols {
                    assert_eq!(grad[i * c.stride + j].0, want[i * c.stride + j], "[{i}][{j}]");
                }
            }
        } else {
            let logits: Vec<Bf16> = h.iter().map(|&p| Bf16(p)).collect();
            let mut grad = vec![Bf16(0); h.len()];
            let io = LogitsGrad::Separate {
                logits: Matrix { data: &logits, rows: c.rows, cols: c.cols, stride: c.stride },
                grad: MatrixMut { data: &mut grad, rows: c.rows, cols: c.cols, stride: c.stride },
            };
            backward(io, c.targets(), &c.options(), up).expect("valid");
            for i in 0..c.rows {
                for j in 0..c.cols {
                    assert_eq!(grad[i * c.stride + j].0, want[i * c.stride + j], "[{i}][{j}]");
                }
            }
        }
    }
}
