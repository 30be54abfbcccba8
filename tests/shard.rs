//! Vocabulary-sharded calls against the unsharded fused call on the
//! concatenated logits: every option, shards of uneven sizes (one class
//! included), merges in every order, ±1e4 / −inf / NaN logits.

#![allow(clippy::needless_range_loop)]

mod support;

use support::*;
use xent::loss::shard::*;
use xent::loss::*;

fn make(rng: &mut Rng, rows: usize, cols: usize) -> Case {
    let stride = cols + rng.pick(&[0, 2]);
    let offset = rng.pick(&[0.0, 0.0, 1e4, -1e4]);
    let scale = rng.pick(&[1.0, 5.0]);
    let mut logits = vec![0.0f32; rows * stride];
    let ignore_index = rng.pick(&[-100, 1]);
    let labels: Vec<i32> =
        (0..rows).map(|_| if rng.below(6) == 0 { ignore_index } else { rng.below(cols) as i32 }).collect();
    let masked = rng.below(4) == 0;
    for i in 0..rows {
        for j in 0..cols {
            logits[i * stride + j] = (offset + scale * rng.normal()) as f32;
            if masked && rng.below(3) == 0 && j as i32 != labels[i] {
                logits[i * stride + j] = f32::NEG_INFINITY;
            }
        }
        if rng.below(9) == 0 {
            logits[i * stride + rng.below(cols)] = f32::NAN;
        }
    }
    Case {
        rows,
        cols,
        stride,
        logits,
        labels,
        probs: vec![],
        soft: false,
        weights: (rng.below(3) == 0).then(|| (0..cols).map(|_| 0.3 + rng.unit() as f32).collect()),
        reduction: rng.pick(&[Reduction::Mean, Reduction::Sum, Reduction::None]),
        ignore_index,
        // Smoothing over masked classes is an infinite loss on both sides.
        smoothing: if masked { 0.0 } else { rng.pick(&[0.0, 0.1]) },
        z_loss: rng.pick(&[0.0, 1e-4]),
        softcap: rng.pick(&[0.0, 0.0, 25.0]),
    }
}

/// Class boundaries of `p` shards (uneven; the first may have one class).
fn shards(rng: &mut Rng, cols: usize, p: usize) -> Vec<(usize, usize)> {
    let mut cuts: Vec<usize> = (1..p).map(|_| 1 + rng.below(cols.max(2) - 1)).collect();
    if p > 1 && cols > 2 && rng.below(2) == 0 {
        cuts[0] = 1;
    }
    cuts.push(0);
    cuts.push(cols);
    cuts.sort();
    cuts.dedup();
    cuts.windows(2).map(|w| (w[0], w[1] - w[0])).collect()
}

fn close_row(got: &[f32], want: &[f32], what: &str, c: &Case) {
    let scale = want.iter().filter(|x| x.is_finite()).fold(0.0f32, |a, &x| a.max(x.abs()));
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            close(f64::from(g), f64::from(w), 1e-5, 1e-5 * f64::from(scale) + 1e-12),
            "{what}[{j}] {g} vs {w} (row scale {scale}) {:?}",
            c.options()
        );
    }
}

fn check_case(rng: &mut Rng, c: &Case, p: usize) {
    check_case_kept(rng, c, p, None)
}

/// [`check_case`], with the kept pair's buffers picked by `hows` (all four
/// ways) or at random.
fn check_case_kept(rng: &mut Rng, c: &Case, p: usize, hows: Option<&[u8]>) {
    let whole = fused(c, false, |_| {});
    let o = c.options();
    let parts = shards(rng, c.cols, p);
    let layout = |off| ShardLayout { class_offset: off, total_classes: c.cols };
    // Each rank's statistics of its shard (a view into the full rows).
    let stats: Vec<Vec<ShardStats>> = parts
        .iter()
        .map(|&(off, n)| {
            let m = Matrix { data: c.logits.get(off..).unwrap_or(&[]), rows: c.rows, cols: n, stride: c.stride };
            let mut st = vec![ShardStats::default(); c.rows];
            shard_stats(m, layout(off), &c.labels, &o, &mut st).expect("valid");
            st
        })
        .collect();
    // Merged forwards and backwards must agree (commutative, associative).
    let mut merged = stats[0].clone();
    for s in &stats[1..] {
        merge_stats(s, &mut merged);
    }
    let mut other = stats[stats.len() - 1].clone();
    for s in stats[..stats.len() - 1].iter().rev() {
        merge_stats(s, &mut other);
    }
    for (a, b) in merged.iter().zip(&other) {
        assert!(close(f64::from(a.sum_exp), f64::from(b.sum_exp), 1e-6, 0.0) && a.max == b.max, "{a:?} vs {b:?}");
    }
    let mut loss = vec![0.0f32; c.loss_len()];
    let mut lse = vec![0.0f32; c.rows];
    shard_loss(&merged, c.cols, &c.labels, &o, &mut loss, Some(&mut lse)).expect("valid");
    for (i, (&g, &w)) in loss.iter().zip(&whole.loss).enumerate() {
        assert!(close(f64::from(g), f64::from(w), 1e-5, 1e-6), "loss[{i}] {g} vs {w} with {p} shards {:?} in {c:?}", o);
    }
    for i in 0..c.rows {
        assert!(
            close(f64::from(lse[i]), f64::from(whole.lse[i]), 1e-6, 1e-5),
            "lse[{i}] {} vs {}",
            lse[i],
            whole.lse[i]
        );
    }
    // Every shard's gradient (separately, and in place for the last one).
    let ones = vec![1.0f32; c.loss_len()];
    for (k, &(off, n)) in parts.iter().enumerate() {
        let mut g = vec![0.0f32; c.rows * n];
        let in_place = k + 1 == parts.len();
        let mut copy: Vec<f32> = (0..c.rows).flat_map(|i| c.logits[i * c.stride + off..][..n].to_vec()).collect();
        let io = if in_place {
            LogitsGrad::InPlace(MatrixMut { data: &mut copy, rows: c.rows, cols: n, stride: n })
        } else {
            LogitsGrad::Separate {
                logits: Matrix { data: c.logits.get(off..).unwrap_or(&[]), rows: c.rows, cols: n, stride: c.stride },
                grad: MatrixMut { data: &mut g, rows: c.rows, cols: n, stride: n },
            }
        };
        shard_backward(io, layout(off), &c.labels, &o, &merged, &ones).expect("valid");
        let got = if in_place { &copy } else { &g };
        for i in 0..c.rows {
            let want = &whole.grad[i * c.stride + off..][..n];
            close_row(&got[i * n..][..n], want, &format!("grad row {i} shard {k} ({off}+{n})"), c);
        }
        for &how in hows.unwrap_or(&[rng.below(4) as u8]) {
            check_kept(c, &whole.grad, (k, off, n), (&stats[k], &merged), how);
        }
    }
}

/// The kept pair on one shard: statistics bit-identical to `shard_stats`'s,
/// and the gradient the unsharded call's. `how` picks separate buffers or
/// in place for each of the two calls.
fn check_kept(
    c: &Case,
    want: &[f32],
    (k, off, n): (usize, usize, usize),
    (local, merged): (&[ShardStats], &[ShardStats]),
    how: u8,
) {
    let o = c.options();
    let layout = ShardLayout { class_offset: off, total_classes: c.cols };
    let ks = n + 1;
    let mut kept = vec![f32::NAN; c.rows * ks];
    let mut st = vec![ShardStats::default(); c.rows];
    let rows = c.rows;
    let keep_in_place = how & 1 != 0;
    if keep_in_place {
        for i in 0..rows {
            kept[i * ks..][..n].copy_from_slice(&c.logits[i * c.stride + off..][..n]);
        }
        let io = LogitsGrad::InPlace(MatrixMut { data: &mut kept, rows, cols: n, stride: ks });
        shard_stats_keep(io, layout, &c.labels, &o, &mut st).expect("valid");
    } else {
        let m = Matrix { data: c.logits.get(off..).unwrap_or(&[]), rows, cols: n, stride: c.stride };
        let io = LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut kept, rows, cols: n, stride: ks } };
        shard_stats_keep(io, layout, &c.labels, &o, &mut st).expect("valid");
    }
    // The same statistics as `shard_stats` (sums taken relative to the
    // row's max rather than a running one, so equal to rounding).
    for (i, (a, b)) in st.iter().zip(local).enumerate() {
        let same = |x: f32, y: f32| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
        let near = |x: f32, y: f32| same(x, y) || close(f64::from(x), f64::from(y), 1e-6, 0.0);
        assert!(
            same(a.max, b.max)
                && near(a.sum_exp, b.sum_exp)
                && same(a.target_logit, b.target_logit)
                && near(a.weighted_logit_sum, b.weighted_logit_sum)
                && same(a.weight_sum, b.weight_sum),
            "kept stats of row {i}, shard {k}: {a:?} vs {b:?}"
        );
    }
    let ones = vec![1.0f32; c.loss_len()];
    let mut g = vec![f32::NAN; rows * n];
    let got: &[f32] = if how & 2 != 0 {
        let io = LogitsGrad::InPlace(MatrixMut { data: &mut kept, rows, cols: n, stride: ks });
        shard_backward_kept(io, layout, &c.labels, &o, (&st, merged), &ones).expect("valid");
        &kept
    } else {
        let io = LogitsGrad::Separate {
            logits: Matrix { data: &kept, rows, cols: n, stride: ks },
            grad: MatrixMut { data: &mut g, rows, cols: n, stride: n },
        };
        shard_backward_kept(io, layout, &c.labels, &o, (&st, merged), &ones).expect("valid");
        &g
    };
    let gs = if how & 2 != 0 { ks } else { n };
    for i in 0..rows {
        let want = &want[i * c.stride + off..][..n];
        close_row(&got[i * gs..][..n], want, &format!("kept grad row {i} shard {k} ({off}+{n}) how {how}"), c);
    }
}

#[test]
fn sharded_calls_equal_the_unsharded_call() {
    let mut rng = Rng(606);
    for t in 0..300 {
        let cols = rng.pick(&[1, 2, 3, 17, 100, 1000, 3000]);
        let rows = rng.pick(&[0, 1, 4, 20]);
        let c = make(&mut rng, rows, cols);
        check_case(&mut rng, &c, 1 + t % 4);
    }
}

/// The kept pair's other ways: shards longer than 65 536 classes (kept by
/// the chunked scan, then rebased) and outputs of 8 MiB or more (streamed).
#[test]
fn kept_long_shards_and_streamed_outputs() {
    let mut rng = Rng(609);
    for (rows, cols, p) in [(2, 70_000, 1), (3, 140_000, 2), (2100, 1000, 1), (2100, 1003, 2)] {
        let c = make(&mut rng, rows, cols);
        check_case_kept(&mut rng, &c, p, Some(&[0, 1, 2, 3]));
    }
}

/// Every sharded call gives the same bits on one thread, two threads and
/// a caller's pool (rows are split into blocks; each row is computed alone).
#[test]
fn sharded_calls_are_identical_for_any_threads_or_pool() {
    let mut rng = Rng(610);
    for (rows, cols) in [(300, 3000), (2100, 1000), (40_000, 30)] {
        let mut c = make(&mut rng, rows, cols);
        c.reduction = Reduction::Sum;
        let (off, n) = (cols / 3, cols - cols / 3);
        let layout = ShardLayout { class_offset: off, total_classes: cols };
        let m = Matrix { data: &c.logits[off..], rows, cols: n, stride: c.stride };
        let mut results: Vec<Vec<u32>> = Vec::new();
        for how in 0..3 {
            let mut o = c.options();
            match how {
                0 => o.num_threads = 1,
                1 => o.num_threads = 2,
                _ => o.parallel_for = Some(&ReversePool),
            }
            let mut bits = Vec::new();
            let mut st = vec![ShardStats::default(); rows];
            shard_stats(m, layout, &c.labels, &o, &mut st).expect("valid");
            let mut local = vec![ShardStats::default(); rows];
            let mut kept = vec![0f32; rows * n];
            let io = LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut kept, rows, cols: n, stride: n } };
            shard_stats_keep(io, layout, &c.labels, &o, &mut local).expect("valid");
            let mut g = vec![0f32; rows * n];
            let io = LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut g, rows, cols: n, stride: n } };
            shard_backward(io, layout, &c.labels, &o, &st, &[1.0]).expect("valid");
            let io = LogitsGrad::InPlace(MatrixMut { data: &mut kept, rows, cols: n, stride: n });
            shard_backward_kept(io, layout, &c.labels, &o, (&local, &st), &[1.0]).expect("valid");
            for s in st.iter().chain(&local) {
                bits.extend([s.max, s.sum_exp, s.target_logit, s.weighted_logit_sum, s.weight_sum].map(f32::to_bits));
            }
            bits.extend(g.iter().chain(&kept).map(|x| x.to_bits()));
            results.push(bits);
        }
        assert!(results[1] == results[0], "{rows}x{cols}: two threads differ from one");
        assert!(results[2] == results[0], "{rows}x{cols}: a pool differs from one thread");
    }
}

#[test]
fn bad_shards_are_rejected() {
    let mut rng = Rng(607);
    let c = make(&mut rng, 3, 10);
    let o = c.options();
    let mut st = vec![ShardStats::default(); 3];
    let m = Matrix { data: &c.logits, rows: 3, cols: 6, stride: c.stride };
    let beyond = ShardLayout { class_offset: 5, total_classes: 10 };
    assert_eq!(shard_stats(m, beyond, &c.labels, &o, &mut st).map_err(|e| e.kind), Err(ErrorKind::InvalidShape));
    let overflow = ShardLayout { class_offset: usize::MAX, total_classes: 10 };
    assert_eq!(shard_stats(m, overflow, &c.labels, &o, &mut st).map_err(|e| e.kind), Err(ErrorKind::InvalidShape));
    let bad_labels = [0, 10, 1];
    let fits = ShardLayout { class_offset: 4, total_classes: 10 };
    assert_eq!(shard_stats(m, fits, &bad_labels, &o, &mut st).map_err(|e| e.kind), Err(ErrorKind::LabelOutOfRange));
    assert!(st.iter().all(|s| *s == ShardStats::default()), "nothing written on failure");
}

/// A label on a −inf logit whose class has weight 0 adds nothing to the
/// sharded loss either (`0 · log 0 = 0`; found by the `loss` fuzz target).
#[test]
fn a_masked_label_without_mass_adds_nothing_when_sharded() {
    let mut rng = Rng(608);
    for t in 0..20 {
        let cols = rng.pick(&[3, 17, 100]);
        let mut c = make(&mut rng, 4, cols);
        let mut w: Vec<f32> = (0..cols).map(|j| 0.5 + (j % 3) as f32).collect();
        for i in 0..4 {
            c.labels[i] = rng.below(cols) as i32;
            c.logits[i * c.stride + c.labels[i] as usize] = f32::NEG_INFINITY;
            w[c.labels[i] as usize] = 0.0;
        }
        c.weights = Some(w);
        c.smoothing = rng.pick(&[0.0, 0.1]);
        check_case(&mut rng, &c, 1 + t % 3);
    }
}
