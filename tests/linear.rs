//! The fused linear + cross-entropy call against the unfused computation: a
//! float64 matrix product, the float64 loss oracle on those logits, and
//! float64 products for the gradients. Random shapes (dim 1, classes 1,
//! rows 0, tiles of classes and of 512 dims crossed), strides with gaps,
//! every option, bias or not, every gradient present or not, workspaces
//! that force many chunks; extreme and non-finite values with data whose
//! products are exact in float32, so the logits match the oracle's.

#![allow(clippy::needless_range_loop)]

mod support;

use support::*;
use xent::linear::*;
use xent::loss::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Values {
    /// Random floats; logits of order 1–10.
    Normal,
    /// Small integers: every product is exact in float32.
    Exact,
    /// Integers with logits near ±1e4, −inf bias masks, NaN / +inf rows.
    Extreme,
}

#[derive(Clone, Debug)]
struct Lin {
    rows: usize,
    dim: usize,
    classes: usize,
    hs: usize,
    ws: usize,
    hidden: Vec<f32>,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    labels: Vec<i32>,
    weights: Option<Vec<f32>>,
    reduction: Reduction,
    ignore_index: i32,
    smoothing: f32,
    z_loss: f32,
    softcap: f32,
}

fn matrix(rng: &mut Rng, rows: usize, cols: usize, stride: usize, mut f: impl FnMut(&mut Rng) -> f32) -> Vec<f32> {
    let len = if rows == 0 { 0 } else { (rows - 1) * stride + cols };
    let mut m = vec![f32::from_bits(0x7fc0_dead); len];
    for i in 0..rows {
        for j in 0..cols {
            m[i * stride + j] = f(rng);
        }
    }
    m
}

fn make(rng: &mut Rng, rows: usize, dim: usize, classes: usize, values: Values) -> Lin {
    let hs = dim + rng.pick(&[0, 0, 1, 5]);
    let ws = dim + rng.pick(&[0, 0, 3, 16]);
    let (hidden, weight) = match values {
        Values::Normal => {
            let s = rng.pick(&[1.0, 3.0]) / (dim as f64).sqrt();
            (
                matrix(rng, rows, dim, hs, |r| r.normal() as f32),
                matrix(rng, classes, dim, ws, |r| (s * r.normal()) as f32),
            )
        }
        Values::Exact => (
            matrix(rng, rows, dim, hs, |r| r.below(9) as f32 - 4.0),
            matrix(rng, classes, dim, ws, |r| (r.below(9) as f32 - 4.0) * 0.25),
        ),
        Values::Extreme => {
            // Logits up to about ±1e4 that are exact sums of small products.
            let big = (1e4 / dim as f64).floor().max(1.0) as f32;
            (
                matrix(rng, rows, dim, hs, |r| r.pick(&[-1.0, 0.0, 1.0])),
                matrix(rng, classes, dim, ws, |r| r.pick(&[-big, -1.0, 0.0, 1.0, big])),
            )
        }
    };
    let ignore_index = rng.pick(&[-100, -1, 0]);
    let labels =
        (0..rows).map(|_| if rng.below(5) == 0 { ignore_index } else { rng.below(classes) as i32 }).collect::<Vec<_>>();
    let mut bias = match rng.below(3) {
        0 => None,
        _ if values == Values::Normal => Some((0..classes).map(|_| rng.normal() as f32).collect::<Vec<_>>()),
        _ => Some((0..classes).map(|_| rng.below(5) as f32 - 2.0).collect()),
    };
    let mut lin = Lin {
        rows,
        dim,
        classes,
        hs,
        ws,
        hidden,
        weight,
        bias: None,
        labels,
        weights: (rng.below(3) == 0).then(|| (0..classes).map(|_| 0.25 + rng.unit() as f32).collect()),
        reduction: rng.pick(&[Reduction::Mean, Reduction::Sum, Reduction::None]),
        ignore_index,
        smoothing: rng.pick(&[0.0, 0.0, 0.1]),
        z_loss: rng.pick(&[0.0, 0.0, 1e-4]),
        softcap: rng.pick(&[0.0, 0.0, 30.0]),
    };
    if values == Values::Extreme {
        // −inf bias masks classes (never a label); a row of NaN or +inf hidden.
        if let Some(b) = bias.as_mut() {
            for j in 0..classes {
                if rng.below(4) == 0 && !lin.labels.contains(&(j as i32)) {
                    b[j] = f32::NEG_INFINITY;
                }
            }
        }
        if rows > 0 && rng.below(2) == 0 {
            let i = rng.below(rows);
            lin.hidden[i * hs + rng.below(dim)] = rng.pick(&[f32::NAN, f32::INFINITY]);
        }
    }
    lin.bias = bias;
    lin
}

impl Lin {
    fn options(&self) -> Options<'_> {
        Options {
            reduction: self.reduction,
            ignore_index: self.ignore_index,
            class_weights: self.weights.as_deref(),
            label_smoothing: self.smoothing,
            z_loss_scale: self.z_loss,
            logit_softcap: self.softcap,
            num_threads: 1,
            ..Options::default()
        }
    }

    fn linear(&self) -> Linear<'_> {
        Linear {
            hidden: Matrix { data: &self.hidden, rows: self.rows, cols: self.dim, stride: self.hs },
            weight: Matrix { data: &self.weight, rows: self.classes, cols: self.dim, stride: self.ws },
            bias: self.bias.as_deref(),
        }
    }

    fn h(&self, i: usize, k: usize) -> f64 {
        f64::from(self.hidden[i * self.hs + k])
    }

    fn w(&self, j: usize, k: usize) -> f64 {
        f64::from(self.weight[j * self.ws + k])
    }

    fn loss_len(&self) -> usize {
        if self.reduction == Reduction::None { self.rows } else { 1 }
    }
}

/// The unfused computation in float64 (logits rounded to float32 once, as
/// the loss core would see them).
struct Reference {
    case: Case,
    out: reference::Out,
    grad_hidden: Vec<f64>,
    grad_weight: Vec<f64>,
    grad_bias: Vec<f64>,
}

fn reference(l: &Lin) -> Reference {
    let (n, d, c) = (l.rows, l.dim, l.classes);
    let mut logits = vec![0.0f32; n * c];
    for i in 0..n {
        for j in 0..c {
            let dot: f64 = (0..d).map(|k| l.h(i, k) * l.w(j, k)).sum();
            let b = l.bias.as_ref().map_or(0.0, |b| f64::from(b[j]));
            logits[i * c + j] = (dot + b) as f32;
        }
    }
    let case = Case {
        rows: n,
        cols: c,
        stride: c,
        logits,
        labels: l.labels.clone(),
        probs: vec![],
        soft: false,
        weights: l.weights.clone(),
        reduction: l.reduction,
        ignore_index: l.ignore_index,
        smoothing: l.smoothing,
        z_loss: l.z_loss,
        softcap: l.softcap,
    };
    let out = case.reference();
    // Ignored rows take part in no product: they contribute nothing even when
    // their hidden state is not finite. Other rows follow IEEE (0 · inf = NaN),
    // as the unfused products would.
    let kept = |i: usize| l.labels[i] != l.ignore_index;
    let g = |i: usize, j: usize| out.grad[i * c + j];
    let grad_hidden = (0..n * d).map(|e| (0..c).map(|j| g(e / d, j) * l.w(j, e % d)).sum()).collect();
    let grad_weight =
        (0..c * d).map(|e| (0..n).filter(|&i| kept(i)).map(|i| g(i, e / d) * l.h(i, e % d)).sum()).collect();
    let grad_bias = (0..c).map(|j| (0..n).map(|i| g(i, j)).sum()).collect();
    Reference { case, out, grad_hidden, grad_weight, grad_bias }
}

/// Which gradients a call asks for, and its workspace (floats; `None` =
/// the library's default).
#[derive(Clone, Copy, Debug)]
struct Ask {
    hidden: bool,
    weight: bool,
    bias: bool,
    workspace: Option<usize>,
    lse: bool,
    argmax: bool,
}

const ALL: Ask = Ask { hidden: true, weight: true, bias: true, workspace: None, lse: true, argmax: true };

#[derive(Clone, Debug, PartialEq)]
struct Got {
    loss: Vec<f32>,
    lse: Vec<f32>,
    argmax: Vec<i32>,
    grad_hidden: Vec<f32>,
    grad_weight: Vec<f32>,
    grad_bias: Vec<f32>,
}

const UNTOUCHED: f32 = -7.5;

#[allow(clippy::result_large_err)] // xent's errors carry their message inline
fn call(l: &Lin, ask: Ask, tweak: impl Fn(&mut Options<'_>)) -> Result<Got> {
    let (ghs, gws) = (l.dim + 2, l.dim + 1);
    let fill = |rows: usize, stride: usize| vec![UNTOUCHED; if rows == 0 { 0 } else { (rows - 1) * stride + l.dim }];
    let mut g = Got {
        loss: vec![UNTOUCHED; l.loss_len()],
        lse: vec![UNTOUCHED; l.rows],
        argmax: vec![-5; l.rows],
        grad_hidden: fill(l.rows, ghs),
        grad_weight: fill(l.classes, gws),
        grad_bias: vec![UNTOUCHED; l.classes],
    };
    let mut o = l.options();
    tweak(&mut o);
    let mut ws = ask.workspace.map(|n| vec![0.0f32; n]);
    let out = ForwardOut {
        loss: &mut g.loss,
        lse: ask.lse.then_some(&mut g.lse[..]),
        argmax: ask.argmax.then_some(&mut g.argmax[..]),
    };
    let grads = LinearGrads {
        hidden: ask.hidden.then(|| MatrixMut { data: &mut g.grad_hidden, rows: l.rows, cols: l.dim, stride: ghs }),
        weight: ask.weight.then(|| MatrixMut { data: &mut g.grad_weight, rows: l.classes, cols: l.dim, stride: gws }),
        bias: ask.bias.then_some(&mut g.grad_bias[..]),
    };
    linear_forward_backward(l.linear(), &l.labels, &o, out, grads, ws.as_deref_mut())?;
    Ok(g)
}

/// Compares a gradient with the reference within 1e-4 relative to the
/// largest reference value, plus `slack[e]`: the float32 rounding of the
/// logits' gradient (a few ULP of its terms) carried through the product.
fn close_all(what: &str, got: &[f32], stride: usize, want: &[f64], slack: &[f64], cols: usize, ctx: &Lin) {
    let tol = 1e-4;
    let scale = want.iter().filter(|x| x.is_finite()).fold(0.0f64, |a, &x| a.max(x.abs()));
    for i in 0..want.len() / cols.max(1) {
        for j in 0..cols {
            let (g, w) = (f64::from(got[i * stride + j]), want[i * cols + j]);
            assert!(
                close(g, w, tol, tol * scale + slack[i * cols + j]),
                "{what}[{i}][{j}] {g} vs {w} (scale {scale}) rows {} dim {} classes {} {:?} bias {}",
                ctx.rows,
                ctx.dim,
                ctx.classes,
                ctx.options(),
                ctx.bias.is_some()
            );
        }
    }
}

/// Padding between rows of a gradient must never be written.
fn check_padding(what: &str, got: &[f32], rows: usize, cols: usize, stride: usize) {
    for i in 0..rows.saturating_sub(1) {
        for j in cols..stride {
            assert_eq!(got[i * stride + j], UNTOUCHED, "{what} padding [{i}][{j}] written");
        }
    }
}

fn check(l: &Lin, r: &Reference, g: &Got, ask: Ask, values: Values) {
    // Exact logits: the loss core's own tolerance; otherwise the float32
    // matrix product's rounding (relative ~dim·2⁻²⁴) moves the logits.
    let tol = match values {
        Values::Normal => 1e-4,
        _ if l.softcap > 0.0 => 1e-4,
        _ => 2e-5,
    };
    for (i, (&got, &want)) in g.loss.iter().zip(&r.out.loss).enumerate() {
        assert!(close(f64::from(got), want, tol, 1e-5), "loss[{i}] {got} vs {want} in {l:?}");
    }
    let logits = &r.case.logits;
    for i in 0..l.rows {
        if ask.lse {
            assert!(close(f64::from(g.lse[i]), r.out.lse[i], 1e-5, 1e-5), "lse[{i}] {} vs {}", g.lse[i], r.out.lse[i]);
        } else {
            assert_eq!(g.lse[i], UNTOUCHED);
        }
        if ask.argmax {
            let a = g.argmax[i] as usize;
            let row = &logits[i * l.classes..(i + 1) * l.classes];
            let best = row[r.out.argmax[i]];
            // Exact logits: the same index; otherwise a value within rounding of the best.
            if values == Values::Normal {
                assert!(a < l.classes && (row[a] - best).abs() <= 1e-4 * best.abs().max(1.0), "argmax[{i}] {a}");
            } else {
                assert_eq!(a, r.out.argmax[i], "argmax[{i}]");
            }
        } else {
            assert_eq!(g.argmax[i], -5);
        }
    }
    let (ghs, gws) = (l.dim + 2, l.dim + 1);
    let (n, d, c) = (l.rows, l.dim, l.classes);
    // Rounding of the logits' gradient: a few ULP of the terms it cancels.
    let ulps = |i: usize| 4.0 * f64::from(f32::EPSILON) * r.out.grad_terms[i];
    let finite = |x: f64| if x.is_finite() { x.abs() } else { 0.0 };
    let slack_h: Vec<f64> =
        (0..n * d).map(|e| ulps(e / d) * (0..c).map(|j| finite(l.w(j, e % d))).sum::<f64>()).collect();
    let slack_w: Vec<f64> = (0..c * d).map(|e| (0..n).map(|i| ulps(i) * finite(l.h(i, e % d))).sum()).collect();
    let slack_b: Vec<f64> = (0..c).map(|_| (0..n).map(ulps).sum()).collect();
    if ask.hidden {
        close_all("grad_hidden", &g.grad_hidden, ghs, &r.grad_hidden, &slack_h, l.dim, l);
        check_padding("grad_hidden", &g.grad_hidden, l.rows, l.dim, ghs);
    } else {
        assert!(g.grad_hidden.iter().all(|&x| x == UNTOUCHED));
    }
    if ask.weight {
        close_all("grad_weight", &g.grad_weight, gws, &r.grad_weight, &slack_w, l.dim, l);
        check_padding("grad_weight", &g.grad_weight, l.classes, l.dim, gws);
    } else {
        assert!(g.grad_weight.iter().all(|&x| x == UNTOUCHED));
    }
    if ask.bias {
        close_all("grad_bias", &g.grad_bias, 1, &r.grad_bias, &slack_b, 1, l);
    } else {
        assert!(g.grad_bias.iter().all(|&x| x == UNTOUCHED));
    }
}

/// Floats of a workspace holding `rows` chunk rows (plus alignment slack).
fn workspace_for(l: &Lin, rows: usize, grad_hidden: bool) -> usize {
    let r16 = |n: usize| n.div_ceil(16) * 16;
    let per_row = r16(l.classes) + r16(l.dim) * if grad_hidden { 2 } else { 1 } + 4;
    rows * per_row + 15
}

fn run_case(rng: &mut Rng, l: &Lin, values: Values) {
    let r = reference(l);
    let mut ask = ALL;
    ask.hidden = rng.below(4) != 0;
    ask.weight = rng.below(4) != 0;
    ask.bias = rng.below(3) != 0;
    ask.lse = rng.below(3) != 0;
    ask.argmax = rng.below(3) != 0;
    ask.workspace = match rng.below(3) {
        0 => None,
        1 => Some(workspace_for(l, 1 + rng.below(5), ask.hidden)),
        _ => Some(workspace_for(l, 1 + rng.below(40), ask.hidden) + rng.below(100)),
    };
    let g = call(l, ask, |_| {}).expect("valid call");
    check(l, &r, &g, ask, values);
}

#[test]
fn random_shapes_match_the_unfused_reference() {
    let mut rng = Rng(41);
    let dims = [1, 2, 3, 16, 17, 40];
    let classes = [1, 2, 5, 16, 33, 100, 300];
    for t in 0..300 {
        let values = [Values::Normal, Values::Exact, Values::Extreme][t % 3];
        let (rows, dim, c) = (rng.pick(&[0, 1, 2, 7, 16, 33, 70]), rng.pick(&dims), rng.pick(&classes));
        let l = make(&mut rng, rows, dim, c, values);
        run_case(&mut rng, &l, values);
    }
}

#[test]
fn tiles_of_classes_and_dims_match_the_unfused_reference() {
    // Crosses tiles of classes (256 to 2048 wide) and of 512 dims, with chunks of a few rows.
    let mut rng = Rng(42);
    for (rows, dim, classes) in [(9, 600, 2100), (20, 513, 50), (5, 8, 4500), (40, 64, 2049), (6, 5, 17000)] {
        for values in [Values::Normal, Values::Exact] {
            let l = make(&mut rng, rows, dim, classes, values);
            run_case(&mut rng, &l, values);
        }
    }
}

#[test]
fn forward_matches_forward_backward_outputs() {
    let mut rng = Rng(43);
    for t in 0..60 {
        let values = [Values::Normal, Values::Extreme][t % 2];
        let (rows, dim, classes) = (rng.pick(&[0, 3, 30]), rng.pick(&[1, 7, 33]), rng.pick(&[1, 10, 70]));
        let l = make(&mut rng, rows, dim, classes, values);
        let fb = call(&l, ALL, |_| {}).expect("valid");
        let mut loss = vec![0.0; l.loss_len()];
        let (mut lse, mut argmax) = (vec![0.0; l.rows], vec![0; l.rows]);
        let out = ForwardOut { loss: &mut loss, lse: Some(&mut lse), argmax: Some(&mut argmax) };
        let ws = workspace_for(&l, 1 + rng.below(9), false);
        let mut ws = vec![0.0; ws];
        let ws = (t % 3 != 0).then_some(&mut ws[..]);
        linear_forward(l.linear(), &l.labels, &l.options(), out, ws).expect("valid");
        // The same row kernels on the same products: identical bits.
        assert_eq!(bits(&loss), bits(&fb.loss));
        assert_eq!(bits(&lse), bits(&fb.lse));
        assert_eq!(argmax, fb.argmax);
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn every_thread_count_gives_identical_bits() {
    let mut rng = Rng(44);
    for (rows, dim, classes) in [(300, 40, 3000), (100, 300, 700), (64, 8, 5000)] {
        let mut l = make(&mut rng, rows, dim, classes, Values::Normal);
        l.reduction = Reduction::Mean;
        let ask = Ask { workspace: Some(workspace_for(&l, 48, true)), ..ALL };
        let base = call(&l, ask, |o| o.num_threads = 1).expect("valid");
        for threads in [2, 3, 0] {
            let g = call(&l, ask, |o| o.num_threads = threads).expect("valid");
            assert_eq!(g, base, "{threads} threads");
        }
        let g = call(&l, ask, |o| o.parallel_for = Some(&ReversePool)).expect("valid");
        assert_eq!(g, base, "caller's pool");
    }
}

#[test]
fn a_workspace_too_small_for_one_row_is_rejected_and_nothing_is_written() {
    let mut rng = Rng(45);
    let l = make(&mut rng, 5, 8, 20, Values::Normal);
    let one = workspace_for(&l, 1, true);
    let ask = Ask { workspace: Some(one - 16), ..ALL };
    let e = call(&l, ask, |_| {}).expect_err("too small");
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("workspace"), "{}", e.message);
    // Exactly one row (with alignment slack) works, one chunk row at a time.
    let g = call(&l, Ask { workspace: Some(one), ..ALL }, |_| {}).expect("fits one row");
    check(&l, &reference(&l), &g, ALL, Values::Normal);
    // No rows: a too-small workspace is still an error (validity does not
    // depend on the data); the default needs none.
    let mut empty = make(&mut rng, 0, 8, 20, Values::Normal);
    empty.reduction = Reduction::Sum;
    assert!(call(&empty, Ask { workspace: Some(3), ..ALL }, |_| {}).is_err());
    let g = call(&empty, ALL, |_| {}).expect("no rows");
    assert_eq!(g.loss, vec![0.0]);
    assert!(g.grad_weight.iter().enumerate().all(|(e, &x)| x == if e % (8 + 1) < 8 { 0.0 } else { UNTOUCHED }));
    assert!(g.grad_bias.iter().all(|&x| x == 0.0));
}

#[test]
fn bad_shapes_are_rejected_before_anything_is_written() {
    let mut rng = Rng(46);
    let l = make(&mut rng, 4, 6, 9, Values::Normal);
    let mut loss = [UNTOUCHED; 4];
    let mut gh = vec![UNTOUCHED; 4 * 6];
    let mut gb = vec![UNTOUCHED; 9];
    let o = l.options();
    let mut try_call = |lin: Linear<'_>, labels: &[i32], gh_rows: usize, gb_len: usize| {
        let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
        let grads = LinearGrads {
            hidden: Some(MatrixMut { data: &mut gh, rows: gh_rows, cols: 6, stride: 6 }),
            weight: None,
            bias: Some(&mut gb[..gb_len]),
        };
        linear_forward_backward(lin, labels, &o, out, grads, None).map_err(|e| e.kind)
    };
    let good = l.linear();
    let bad_dim = Linear { weight: Matrix { cols: 5, ..good.weight }, ..good };
    assert_eq!(try_call(bad_dim, &l.labels, 4, 9), Err(ErrorKind::InvalidShape));
    let zero_dim =
        Linear { hidden: Matrix { cols: 0, ..good.hidden }, weight: Matrix { cols: 0, ..good.weight }, ..good };
    assert_eq!(try_call(zero_dim, &l.labels, 4, 9), Err(ErrorKind::InvalidShape));
    let short_bias = Linear { bias: Some(&[0.0; 8]), ..good };
    assert_eq!(try_call(short_bias, &l.labels, 4, 9), Err(ErrorKind::InvalidShape));
    assert_eq!(try_call(good, &l.labels, 3, 9), Err(ErrorKind::InvalidShape));
    assert_eq!(try_call(good, &l.labels, 4, 8), Err(ErrorKind::InvalidShape));
    assert_eq!(try_call(good, &[0, 1, 2, 9], 4, 9), Err(ErrorKind::LabelOutOfRange));
    assert_eq!(try_call(good, &[0, 1, 2], 4, 9), Err(ErrorKind::InvalidShape));
    assert!(loss.iter().chain(&gh).chain(&gb).all(|&x| x == UNTOUCHED));
}

#[test]
fn default_workspace_stops_growing_with_rows() {
    let a = workspace_len(100_000, 1024, 32_000).expect("size");
    assert_eq!(a, workspace_len(10_000_000, 1024, 32_000).expect("size"));
    // A chunk's logits are about 32 MiB: well under the 500 MiB of all logits.
    assert!(a * 4 < 64 << 20, "{a}");
    assert!(workspace_len(3, 10, 10).expect("size") < workspace_len(300, 10, 10).expect("size"));
    assert_eq!(workspace_len(5, 0, 10), None);
    assert_eq!(workspace_len(5, 10, 0), None);
    assert_eq!(workspace_len(5, usize::MAX / 2, 10), None);
}

/// One hidden row, or one class, may have any stride: it is never stepped
/// (found by the `linear` fuzz target: a stride beyond isize panicked on
/// its way to the matrix product). Results equal the dense call's.
#[test]
fn a_single_row_or_class_with_an_enormous_stride_is_the_dense_one() {
    let mut rng = Rng(43);
    for (rows, classes) in [(1, 7), (5, 1), (1, 1), (1, 300)] {
        let dense = make(&mut rng, rows, 9, classes, Values::Exact);
        let mut l = Lin {
            hidden: dense.hidden[..(rows - 1) * dense.hs + 9].to_vec(),
            weight: dense.weight[..(classes - 1) * dense.ws + 9].to_vec(),
            ..dense
        };
        let want = call(&l, ALL, |_| {}).expect("dense call");
        for stride in [usize::MAX, usize::MAX / 4 + 1, usize::MAX / 1000 + 1] {
            if rows == 1 {
                l.hs = stride;
            }
            if classes == 1 {
                l.ws = stride;
            }
            assert_eq!(
                call(&l, ALL, |_| {}).expect("valid call"),
                want,
                "rows {rows} classes {classes} stride {stride}"
            );
        }
    }
}
