//! The gradient options a training loop needs (`grad_scale`,
//! `grad_accumulate`, `grad_zero_padding`) on every call family, against
//! the float64 reference and against the calls without them; the caller's
//! pool invoked once per pass; the backward given the forward's lse as
//! precise as without it; and vocabulary shards of 0 classes.

#![allow(clippy::needless_range_loop, clippy::result_large_err)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use support::*;
use xent::kernels::{Half, Isa, narrow_lanes, widen_lanes};
use xent::linear::*;
use xent::loss::shard::*;
use xent::loss::*;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A case with random options; `cols` classes, a stride gap of `gap`.
fn make(rng: &mut Rng, rows: usize, cols: usize, gap: usize, soft: bool) -> Case {
    let stride = cols + gap;
    let mut logits = vec![0.0f32; rows * stride];
    let scale = rng.pick(&[1.0, 4.0]);
    for x in logits.iter_mut() {
        *x = (scale * rng.normal()) as f32;
    }
    let labels = (0..rows).map(|_| if rng.below(6) == 0 { -100 } else { rng.below(cols) as i32 }).collect();
    let mut probs: Vec<f32> = (0..rows * cols).map(|_| rng.unit() as f32).collect();
    for i in 0..rows {
        let s: f32 = probs[i * cols..(i + 1) * cols].iter().sum();
        probs[i * cols..(i + 1) * cols].iter_mut().for_each(|p| *p /= s);
    }
    Case {
        rows,
        cols,
        stride,
        // The whole last row's padding too (for grad_zero_padding).
        logits,
        labels,
        probs,
        soft,
        weights: (rng.below(2) == 0).then(|| (0..cols).map(|_| (0.2 + rng.unit()) as f32).collect()),
        reduction: rng.pick(&[Reduction::Mean, Reduction::Sum, Reduction::None]),
        ignore_index: -100,
        smoothing: rng.pick(&[0.0, 0.0, 0.1]),
        z_loss: rng.pick(&[0.0, 1e-3]),
        softcap: rng.pick(&[0.0, 0.0, 12.0]),
    }
}

/// What a gradient call returns: its loss (fused) and gradient buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Call {
    Fused,
    Backward,
    BackwardLse,
}

/// Runs `call` on `c` with options changed by `tweak`, the gradient starting
/// from `start` (the logits themselves when `in_place`).
fn run<'a>(
    c: &'a Case,
    call: Call,
    in_place: bool,
    start: &[f32],
    tweak: impl Fn(&mut Options<'a>),
) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut o = c.options();
    tweak(&mut o);
    let mut grad = if in_place { c.logits.clone() } else { start.to_vec() };
    let mut loss = vec![0.0f32; c.loss_len()];
    let mut lse = vec![0.0f32; c.rows];
    let base = c.options();
    forward(c.matrix(), c.targets(), &base, ForwardOut { loss: &mut loss, lse: Some(&mut lse), argmax: None })?;
    let io = c.logits_grad(&mut grad, in_place);
    let ones = vec![1.0f32; c.loss_len()];
    match call {
        Call::Fused => {
            let mut l2 = vec![0.0f32; c.loss_len()];
            forward_backward(io, c.targets(), &o, ForwardOut { loss: &mut l2, lse: None, argmax: None })?;
            assert_eq!(bits(&l2), bits(&loss), "the gradient options change no loss");
        }
        Call::Backward => backward(io, c.targets(), &o, Upstream { grad_loss: &ones, lse: None })?,
        Call::BackwardLse => backward(io, c.targets(), &o, Upstream { grad_loss: &ones, lse: Some(&lse) })?,
    }
    Ok((loss, grad))
}

fn kept(c: &Case, i: usize) -> bool {
    c.soft || c.labels[i] != c.ignore_index
}

const SHAPES: &[(usize, usize)] =
    &[(37, 1), (37, 5), (37, 16), (21, 17), (21, 40), (20, 64), (9, 65), (18, 100), (17, 128), (7, 1000), (3, 2500)];

#[test]
fn grad_scale_scales_every_gradient_and_nothing_else() {
    let mut rng = Rng(11);
    for &(rows, cols) in SHAPES {
        for soft in [false, true] {
            let gap = rng.pick(&[0, 3]);
            let c = make(&mut rng, rows, cols, gap, soft);
            let r = c.reference();
            for call in [Call::Fused, Call::Backward, Call::BackwardLse] {
                let zeros = vec![0.0f32; c.logits.len()];
                let (_, plain) = run(&c, call, false, &zeros, |_| {}).expect("valid");
                // A power of two scales every rounding exactly.
                let (_, quarter) = run(&c, call, false, &zeros, |o| o.grad_scale = 0.25).expect("valid");
                let want: Vec<u32> = plain.iter().map(|x| (x * 0.25).to_bits()).collect();
                assert_eq!(bits(&quarter), want, "{call:?} grad_scale 0.25 in {c:?}");
                // Any other scale: k times the reference gradient.
                let k = -1.0f32 / 3.0;
                let (_, scaled) = run(&c, call, false, &zeros, |o| o.grad_scale = k).expect("valid");
                for i in 0..rows {
                    let want = &r.grad[i * cols..(i + 1) * cols];
                    let row_scale = want.iter().fold(0.0f64, |a, &x| a.max(x.abs()));
                    let tol = if c.softcap > 0.0 { 1e-4 } else { 2e-5 };
                    for j in 0..cols {
                        let got = f64::from(scaled[i * c.stride + j]);
                        let w = f64::from(k) * want[j];
                        let slack = tol * row_scale + 4.0 * f64::from(f32::EPSILON) * r.grad_terms[i];
                        assert!(close(got, w, tol, slack), "{call:?} [{i}][{j}] {got} vs {w} in {c:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn none_with_grad_scale_one_over_n_gives_the_means_gradient() {
    let mut rng = Rng(12);
    let mut c = make(&mut rng, 64, 300, 0, false);
    c.labels.iter_mut().for_each(|y| *y = y.rem_euclid(300));
    (c.weights, c.reduction) = (None, Reduction::Mean);
    let zeros = vec![0.0f32; c.logits.len()];
    let (_, mean) = run(&c, Call::Fused, false, &zeros, |_| {}).expect("valid");
    c.reduction = Reduction::None;
    let (rows_loss, scaled) = run(&c, Call::Fused, false, &zeros, |o| o.grad_scale = 1.0 / 64.0).expect("valid");
    assert_eq!(rows_loss.len(), 64, "per-row losses");
    assert_eq!(bits(&scaled), bits(&mean), "1/64 is a power of two: the mean's gradient exactly");
}

#[test]
fn accumulating_adds_exactly_what_overwriting_writes() {
    let mut rng = Rng(13);
    for &(rows, cols) in SHAPES {
        for soft in [false, true] {
            let gap = rng.pick(&[0, 2]);
            let c = make(&mut rng, rows, cols, gap, soft);
            // Signed zeros too: an ignored row keeps even the sign of a 0.
            let old: Vec<f32> =
                (0..c.logits.len()).map(|i| if i % 5 == 0 { -0.0 } else { rng.normal() as f32 }).collect();
            for call in [Call::Fused, Call::Backward, Call::BackwardLse] {
                for k in [1.0f32, 0.3] {
                    let (_, g) = run(&c, call, false, &vec![0.0; old.len()], |o| o.grad_scale = k).expect("valid");
                    let (_, acc) = run(&c, call, false, &old, |o| {
                        o.grad_accumulate = true;
                        o.grad_scale = k;
                    })
                    .expect("valid");
                    for i in 0..rows {
                        for j in 0..c.stride {
                            let at = i * c.stride + j;
                            let want = if j >= cols || !kept(&c, i) { old[at] } else { old[at] + g[at] };
                            assert_eq!(
                                acc[at].to_bits(),
                                want.to_bits(),
                                "{call:?} k {k} [{i}][{j}]: {} vs {want} in {c:?}",
                                acc[at]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn zero_padding_zeroes_exactly_the_padding() {
    let mut rng = Rng(14);
    for &(rows, cols) in SHAPES {
        let c = make(&mut rng, rows, cols, 3, false);
        let junk: Vec<f32> = (0..c.logits.len()).map(|_| rng.normal() as f32).collect();
        for call in [Call::Fused, Call::Backward, Call::BackwardLse] {
            for in_place in [false, true] {
                let (_, g) = run(&c, call, in_place, &junk, |_| {}).expect("valid");
                let (_, z) = run(&c, call, in_place, &junk, |o| o.grad_zero_padding = true).expect("valid");
                for i in 0..rows {
                    for j in 0..c.stride {
                        let at = i * c.stride + j;
                        let want = if j < cols { g[at] } else { 0.0 };
                        assert_eq!(z[at].to_bits(), want.to_bits(), "{call:?} in place {in_place} [{i}][{j}]");
                    }
                }
                // Accumulating keeps its rule for the values and zeroes the padding.
                if !in_place {
                    let (_, a) = run(&c, call, false, &junk, |o| {
                        o.grad_zero_padding = true;
                        o.grad_accumulate = true;
                    })
                    .expect("valid");
                    assert!((0..rows).all(|i| a[i * c.stride + cols..(i + 1) * c.stride].iter().all(|&x| x == 0.0)));
                }
            }
        }
        // Without room for the last row's padding the call is refused, untouched.
        let mut grad = junk[..junk.len() - 1].to_vec();
        let before = grad.clone();
        let o = Options { grad_zero_padding: true, ..c.options() };
        let g = MatrixMut { data: &mut grad, rows, cols, stride: c.stride };
        let mut loss = vec![0.0; c.loss_len()];
        let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
        let e = forward_backward(LogitsGrad::Separate { logits: c.matrix(), grad: g }, c.targets(), &o, out)
            .expect_err("too short");
        assert_eq!(e.kind, ErrorKind::InvalidShape, "{e}");
        assert_eq!(bits(&grad), bits(&before));
    }
}

#[test]
fn accumulating_in_place_or_a_nonfinite_scale_is_refused() {
    let mut rng = Rng(15);
    let c = make(&mut rng, 8, 10, 0, false);
    let start = c.logits.clone();
    let e = run(&c, Call::Fused, true, &start, |o| o.grad_accumulate = true).expect_err("in place");
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    for k in [f32::NAN, f32::INFINITY] {
        let e = run(&c, Call::Backward, false, &start, |o| o.grad_scale = k).expect_err("not finite");
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    }
}

/// A 16-bit fused call with options `tweak` and the gradient starting at `old`.
fn fused16(kind: Half, c: &Case, h: &[u16], old: &[u16], tweak: impl Fn(&mut Options<'_>)) -> Vec<u16> {
    let mut o = c.options();
    tweak(&mut o);
    let mut grad = old.to_vec();
    let mut loss = vec![0.0; c.loss_len()];
    let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
    macro_rules! go {
        ($t:ident) => {{
            let src: Vec<$t> = h.iter().map(|&x| $t(x)).collect();
            let mut dst: Vec<$t> = grad.iter().map(|&x| $t(x)).collect();
            let m = Matrix { data: &src[..], rows: c.rows, cols: c.cols, stride: c.stride };
            let g = MatrixMut { data: &mut dst[..], rows: c.rows, cols: c.cols, stride: c.stride };
            forward_backward(LogitsGrad::Separate { logits: m, grad: g }, c.targets(), &o, out).expect("valid");
            grad = dst.iter().map(|x| x.0).collect();
        }};
    }
    match kind {
        Half::Bf16 => go!(Bf16),
        Half::F16 => go!(F16),
    }
    grad
}

#[test]
fn sixteen_bit_gradients_scale_accumulate_and_zero_their_padding() {
    let mut rng = Rng(16);
    for kind in [Half::Bf16, Half::F16] {
        for &(rows, cols) in &[(37usize, 5usize), (21, 40), (5, 1000), (2, 3000)] {
            let mut c = make(&mut rng, rows, cols, 3, false);
            c.softcap = 0.0;
            let isa = Isa::Scalar;
            let mut h = vec![0u16; c.logits.len()];
            narrow_lanes(isa, kind, &c.logits, &mut h, false);
            widen_lanes(isa, kind, &h, &mut c.logits);
            let old: Vec<u16> = {
                let o: Vec<f32> = (0..h.len()).map(|_| rng.normal() as f32).collect();
                let mut b = vec![0u16; h.len()];
                narrow_lanes(isa, kind, &o, &mut b, false);
                b
            };
            // The float32 call's gradient on the widened logits, scaled.
            let zeros = vec![0.0f32; c.logits.len()];
            let (_, g32) = run(&c, Call::Fused, false, &zeros, |o| o.grad_scale = 0.5).expect("valid");
            let acc = fused16(kind, &c, &h, &old, |o| {
                o.grad_accumulate = true;
                o.grad_scale = 0.5;
                o.grad_zero_padding = true;
            });
            let mut old32 = vec![0.0f32; h.len()];
            widen_lanes(isa, kind, &old, &mut old32);
            for i in 0..rows {
                for j in 0..c.stride {
                    let at = i * c.stride + j;
                    let want = if j >= cols {
                        0
                    } else if !kept(&c, i) {
                        old[at]
                    } else {
                        let mut w = [0u16];
                        narrow_lanes(isa, kind, &[old32[at] + g32[at]], &mut w, false);
                        w[0]
                    };
                    assert_eq!(acc[at], want, "{kind:?} [{i}][{j}]");
                }
            }
        }
    }
}

#[test]
fn shard_backward_takes_the_gradient_options() {
    let mut rng = Rng(17);
    let c = make(&mut rng, 40, 300, 0, false);
    let o = c.options();
    let (off, n) = (100, 120);
    let shard: Vec<f32> = (0..c.rows).flat_map(|i| c.logits[i * 300 + off..i * 300 + off + n].to_vec()).collect();
    let layout = ShardLayout { class_offset: off, total_classes: 300 };
    let mut stats = vec![ShardStats::default(); c.rows];
    let full = Matrix { data: &c.logits, rows: c.rows, cols: 300, stride: 300 };
    shard_stats(full, ShardLayout { class_offset: 0, total_classes: 300 }, &c.labels, &o, &mut stats).expect("ok");
    let ones = vec![1.0f32; c.loss_len()];
    let stride = n + 8;
    let old: Vec<f32> = (0..c.rows * stride).map(|_| rng.normal() as f32).collect();
    let go = |tweak: &dyn Fn(&mut Options<'_>)| {
        let mut o = c.options();
        tweak(&mut o);
        let mut g = old.clone();
        let m = Matrix { data: &shard, rows: c.rows, cols: n, stride: n };
        let gm = MatrixMut { data: &mut g, rows: c.rows, cols: n, stride };
        shard_backward(LogitsGrad::Separate { logits: m, grad: gm }, layout, &c.labels, &o, &stats, &ones).expect("ok");
        g
    };
    let plain = go(&|_| {});
    let quarter = go(&|o| o.grad_scale = 0.25);
    let acc = go(&|o| {
        o.grad_accumulate = true;
        o.grad_zero_padding = true;
    });
    for i in 0..c.rows {
        for j in 0..stride {
            let at = i * stride + j;
            if j < n {
                assert_eq!(quarter[at].to_bits(), (plain[at] * 0.25).to_bits());
                let want = if kept(&c, i) { old[at] + plain[at] } else { old[at] };
                assert_eq!(acc[at].to_bits(), want.to_bits(), "[{i}][{j}]");
            } else {
                assert_eq!(acc[at], 0.0, "padding [{i}][{j}]");
            }
        }
    }
}

#[test]
fn linear_gradients_scale_accumulate_and_zero_their_padding() {
    let mut rng = Rng(18);
    let (rows, dim, classes) = (50, 24, 70);
    let (hs, ws) = (dim + 5, dim + 3);
    let hidden: Vec<f32> = (0..rows * hs).map(|_| rng.normal() as f32).collect();
    let weight: Vec<f32> = (0..classes * ws).map(|_| (0.3 * rng.normal()) as f32).collect();
    let bias: Vec<f32> = (0..classes).map(|_| rng.normal() as f32).collect();
    let labels: Vec<i32> = (0..rows).map(|i| if i % 7 == 3 { -100 } else { rng.below(classes) as i32 }).collect();
    let old_h: Vec<f32> = (0..rows * hs).map(|_| rng.normal() as f32).collect();
    let old_w: Vec<f32> = (0..classes * ws).map(|_| rng.normal() as f32).collect();
    let old_b: Vec<f32> = (0..classes).map(|_| rng.normal() as f32).collect();
    let go = |tweak: &dyn Fn(&mut Options<'_>)| {
        let mut o = Options::default();
        tweak(&mut o);
        let (mut gh, mut gw, mut gb) = (old_h.clone(), old_w.clone(), old_b.clone());
        let lin = Linear {
            hidden: Matrix { data: &hidden, rows, cols: dim, stride: hs },
            weight: Matrix { data: &weight, rows: classes, cols: dim, stride: ws },
            bias: Some(&bias),
        };
        let grads = LinearGrads {
            hidden: Some(MatrixMut { data: &mut gh, rows, cols: dim, stride: hs }),
            weight: Some(MatrixMut { data: &mut gw, rows: classes, cols: dim, stride: ws }),
            bias: Some(&mut gb),
        };
        let mut loss = [0.0f32];
        let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
        linear_forward_backward(lin, &labels, &o, out, grads, None).expect("valid");
        (gh, gw, gb)
    };
    let plain = go(&|o| o.grad_zero_padding = true);
    let quarter = go(&|o| {
        o.grad_scale = 0.25;
        o.grad_zero_padding = true;
    });
    let acc = go(&|o| {
        o.grad_accumulate = true;
        o.grad_zero_padding = true;
        o.grad_scale = 0.25;
    });
    let check = |got: &[f32], plain: &[f32], old: &[f32], (n, cols, stride): (usize, usize, usize), what: &str| {
        for i in 0..n {
            for j in 0..stride {
                let at = i * stride + j;
                if j >= cols {
                    assert_eq!(got[at], 0.0, "{what} padding [{i}][{j}]");
                    continue;
                }
                let g = plain[at] * 0.25;
                let want = if what == "grad_hidden" && labels[i] == -100 { old[at] } else { old[at] + g };
                assert!(
                    close(f64::from(got[at]), f64::from(want), 1e-5, 1e-6),
                    "{what} [{i}][{j}] {} vs {want}",
                    got[at]
                );
            }
        }
    };
    for (q, p) in [(&quarter.0, &plain.0), (&quarter.1, &plain.1), (&quarter.2, &plain.2)] {
        for (x, y) in q.iter().zip(p.iter()) {
            assert!(close(f64::from(*x), f64::from(*y) * 0.25, 1e-6, 1e-7), "scaled {x} vs {y}/4");
        }
    }
    check(&acc.0, &plain.0, &old_h, (rows, dim, hs), "grad_hidden");
    check(&acc.1, &plain.1, &old_w, (classes, dim, ws), "grad_weight");
    check(&acc.2, &plain.2, &old_b, (1, classes, classes), "grad_bias");
}

#[test]
fn the_new_options_give_the_same_bits_on_every_path_and_thread_count() {
    let mut rng = Rng(19);
    for &(rows, cols) in &[(300usize, 7usize), (200, 40), (40, 1000), (17, 20000)] {
        let c = make(&mut rng, rows, cols, 2, false);
        let old: Vec<f32> = (0..c.logits.len()).map(|_| rng.normal() as f32).collect();
        let first: std::cell::RefCell<Vec<Option<Vec<u32>>>> = std::cell::RefCell::new(vec![None; 3]);
        let pool = ReversePool;
        for_each_isa(|isa| {
            for exec in 0..3 {
                for (key, call) in [Call::Fused, Call::Backward, Call::BackwardLse].into_iter().enumerate() {
                    let (_, g) = run(&c, call, false, &old, |o| {
                        o.grad_accumulate = true;
                        o.grad_zero_padding = true;
                        o.grad_scale = 0.7;
                        match exec {
                            0 => o.num_threads = 1,
                            1 => o.num_threads = 2,
                            _ => o.parallel_for = Some(&pool),
                        }
                    })
                    .expect("valid");
                    let mut seen = first.borrow_mut();
                    match &seen[key] {
                        None => seen[key] = Some(bits(&g)),
                        Some(f) => assert_eq!(&bits(&g), f, "{call:?} {} exec {exec} {rows}x{cols}", isa.name()),
                    }
                }
            }
        });
    }
}

/// A pool that counts its invocations and runs the tasks in order.
struct CountingPool(AtomicUsize);

impl ParallelFor for CountingPool {
    fn run(&self, n_tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        self.0.fetch_add(1, Ordering::Relaxed);
        (0..n_tasks).for_each(task);
    }
}

#[test]
fn a_callers_pool_is_invoked_once_per_pass() {
    // A GPT-2 vocabulary: 50257 classes padded to 50304, one row per block,
    // and more blocks (80) than a round of the old stack table held (64).
    let (rows, cols, stride) = (80, 50257, 50304);
    let mut rng = Rng(20);
    let mut logits: Vec<f32> = (0..rows * stride).map(|_| rng.normal() as f32).collect();
    let labels: Vec<i32> = (0..rows).map(|_| rng.below(cols) as i32).collect();
    let pool = CountingPool(AtomicUsize::new(0));
    let o = Options { parallel_for: Some(&pool), grad_zero_padding: true, ..Options::default() };
    let mut loss = [0.0f32];
    let mut lse = vec![0.0f32; rows];
    let m = Matrix { data: &logits, rows, cols, stride };
    forward(m, Targets::Labels(&labels), &o, ForwardOut { loss: &mut loss, lse: Some(&mut lse), argmax: None })
        .expect("valid");
    assert_eq!(pool.0.swap(0, Ordering::Relaxed), 1, "forward");
    let io = LogitsGrad::InPlace(MatrixMut { data: &mut logits, rows, cols, stride });
    let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
    forward_backward(io, Targets::Labels(&labels), &o, out).expect("valid");
    assert_eq!(pool.0.swap(0, Ordering::Relaxed), 1, "fused, in place");
    assert!((0..rows).all(|i| logits[i * stride + cols..(i + 1) * stride].iter().all(|&x| x == 0.0)));
    let mut grad = vec![0.0f32; rows * stride];
    let m = Matrix { data: &logits, rows, cols, stride };
    let io = LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut grad, rows, cols, stride } };
    backward(io, Targets::Labels(&labels), &o, Upstream { grad_loss: &[1.0], lse: Some(&lse) }).expect("valid");
    assert_eq!(pool.0.swap(0, Ordering::Relaxed), 1, "backward");
}

/// Largest |got − want| of a gradient, relative to its largest |want|.
fn grad_error(got: &[f32], want: &[f64], rows: usize, cols: usize) -> f64 {
    let scale = want.iter().fold(0.0f64, |a, &x| a.max(x.abs()));
    (0..rows * cols).map(|e| (f64::from(got[e]) - want[e]).abs()).fold(0.0, f64::max) / scale
}

#[test]
fn the_backward_given_lse_is_as_precise_as_without_it_at_any_offset() {
    let mut rng = Rng(21);
    for &(rows, cols) in &[(64usize, 10usize), (64, 1000), (8, 32000)] {
        for offset in [0.0f64, 1e4, -1e4, -3e4] {
            for spiky in [false, true] {
                let mut logits: Vec<f32> = (0..rows * cols).map(|_| (offset + 2.0 * rng.normal()) as f32).collect();
                if spiky {
                    for i in 0..rows {
                        logits[i * cols + rng.below(cols)] += 25.0;
                    }
                }
                let labels: Vec<i32> = (0..rows).map(|_| rng.below(cols) as i32).collect();
                let c = Case {
                    rows,
                    cols,
                    stride: cols,
                    logits,
                    labels,
                    probs: vec![],
                    soft: false,
                    weights: None,
                    reduction: Reduction::Sum,
                    ignore_index: -100,
                    smoothing: 0.0,
                    z_loss: 0.0,
                    softcap: 0.0,
                };
                let r = c.reference();
                let zeros = vec![0.0f32; c.logits.len()];
                let (_, fused) = run(&c, Call::Fused, false, &zeros, |_| {}).expect("valid");
                let (_, given) = run(&c, Call::BackwardLse, false, &zeros, |_| {}).expect("valid");
                let (ef, eg) = (grad_error(&fused, &r.grad, rows, cols), grad_error(&given, &r.grad, rows, cols));
                // float32's own rounding of p and of p − 1 bounds every path
                // (PyTorch's float32 included) at a few 1e-7 of the largest entry.
                assert!(
                    eg <= 2.0 * ef + 1e-7 && eg < 6e-7,
                    "{rows}x{cols} offset {offset} spiky {spiky}: {eg:e} (fused {ef:e})"
                );
            }
        }
    }
}

#[test]
fn empty_shards_merged_anywhere_change_no_bit() {
    let mut rng = Rng(22);
    let (rows, total) = (30, 90);
    for smoothing in [0.0, 0.1] {
        let logits: Vec<f32> = (0..rows * total).map(|_| (3.0 * rng.normal()) as f32).collect();
        let labels: Vec<i32> = (0..rows).map(|i| if i % 9 == 0 { -100 } else { rng.below(total) as i32 }).collect();
        let o = Options { label_smoothing: smoothing, ..Options::default() };
        let cuts = [0usize, 25, 60, 90];
        let mut parts = Vec::new();
        for w in cuts.windows(2) {
            let n = w[1] - w[0];
            let shard: Vec<f32> = (0..rows).flat_map(|i| logits[i * total + w[0]..i * total + w[1]].to_vec()).collect();
            let mut st = vec![ShardStats::default(); rows];
            let m = Matrix { data: &shard, rows, cols: n, stride: n };
            let layout = ShardLayout { class_offset: w[0], total_classes: total };
            shard_stats(m, layout, &labels, &o, &mut st).expect("valid");
            parts.push(st);
        }
        let mut empty = vec![ShardStats::default(); rows];
        for offset in [0, 40, 90] {
            let m = Matrix { data: &[], rows, cols: 0, stride: 0 };
            let layout = ShardLayout { class_offset: offset, total_classes: total };
            shard_stats(m, layout, &labels, &o, &mut empty).expect("an empty shard is valid");
            assert!(
                empty
                    .iter()
                    .all(|s| bits(&[s.max, s.sum_exp, s.target_logit]) == bits(&ShardStats::EMPTY.as_array()[..3]))
            );
        }
        let merge_all = |list: &[&Vec<ShardStats>]| {
            let mut acc = list[0].clone();
            for p in &list[1..] {
                merge_stats(p, &mut acc);
            }
            acc
        };
        let plain = merge_all(&[&parts[0], &parts[1], &parts[2]]);
        for at in 0..=3 {
            let mut list: Vec<&Vec<ShardStats>> = vec![&parts[0], &parts[1], &parts[2]];
            list.insert(at, &empty);
            let with = merge_all(&list);
            for (a, b) in with.iter().zip(&plain) {
                assert_eq!(bits(&a.as_array()), bits(&b.as_array()), "empty shard at {at}, smoothing {smoothing}");
            }
        }
        // Its backward writes nothing, and only the padding when asked to.
        let mut grad = vec![7.0f32; rows * 3];
        let layout = ShardLayout { class_offset: 90, total_classes: total };
        let m = Matrix { data: &[], rows, cols: 0, stride: 0 };
        let g = MatrixMut { data: &mut grad, rows, cols: 0, stride: 3 };
        shard_backward(LogitsGrad::Separate { logits: m, grad: g }, layout, &labels, &o, &plain, &[1.0])
            .expect("valid");
        assert!(grad.iter().all(|&x| x == 7.0));
        let o = Options { grad_zero_padding: true, ..o };
        let m = Matrix { data: &[], rows, cols: 0, stride: 0 };
        let g = MatrixMut { data: &mut grad, rows, cols: 0, stride: 3 };
        shard_backward(LogitsGrad::Separate { logits: m, grad: g }, layout, &labels, &o, &plain, &[1.0])
            .expect("valid");
        assert!(grad.iter().all(|&x| x == 0.0));
    }
}

trait AsArray {
    fn as_array(&self) -> [f32; 5];
}

impl AsArray for ShardStats {
    fn as_array(&self) -> [f32; 5] {
        [self.max, self.sum_exp, self.target_logit, self.weighted_logit_sum, self.weight_sum]
    }
}
