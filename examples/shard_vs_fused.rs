//! One rank's sharded step against the unsharded fused call on the same
//! logits, alternating so that a noisy machine slows all alike; prints the
//! median of 15 timings of each part and the ratios. The gradient buffer
//! starts `skew` floats past a 64-byte boundary (default 0).
//!
//!     cargo run --release --example shard_vs_fused -- 2048 8000 [skew]

use std::time::Instant;

use xent::loss::shard::*;
use xent::loss::*;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|v| v.parse().expect("rows cols")).collect();
    let (rows, cols) = match a[..] {
        [r, c, ..] => (r, c),
        _ => (2048, 8000),
    };
    let skew = a.get(2).copied().unwrap_or(0);
    let mut x = 1u32;
    let f: Vec<f32> = (0..rows * cols)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / 16_777_216.0 * 12.0 - 6.0
        })
        .collect();
    let labels: Vec<i32> = (0..rows).map(|i| ((i * 7919) % cols) as i32).collect();
    let mut gbuf = vec![0.0f32; rows * cols + 32];
    let skip = gbuf.as_ptr().align_offset(64) + skew % 16;
    let g = &mut gbuf[skip..skip + rows * cols];
    let mut loss = [0.0f32];
    let opts = Options { num_threads: 1, ..Options::default() };
    let layout = ShardLayout { class_offset: 0, total_classes: cols };
    let (mut local, mut merged) = (vec![ShardStats::default(); rows], vec![ShardStats::default(); rows]);
    let m = Matrix { data: &f, rows, cols, stride: cols };
    let names = ["memcpy", "fused", "stats", "backward", "stats_keep", "backward_kept"];
    let mut t: Vec<Vec<f64>> = vec![vec![]; names.len()];
    for round in 0..16 {
        let mut times = [0.0f64; 6];
        let mut time = |k: usize, f: &mut dyn FnMut()| {
            let s = Instant::now();
            f();
            times[k] = s.elapsed().as_secs_f64();
        };
        time(0, &mut || g.copy_from_slice(&f[..rows * cols]));
        time(1, &mut || {
            let io = LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut *g, rows, cols, stride: cols } };
            let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
            forward_backward(io, Targets::Labels(&labels), &opts, out).expect("valid");
        });
        time(2, &mut || shard_stats(m, layout, &labels, &opts, &mut merged).expect("valid"));
        time(3, &mut || {
            let io = LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut *g, rows, cols, stride: cols } };
            shard_backward(io, layout, &labels, &opts, &merged, &[1.0]).expect("valid");
        });
        time(4, &mut || {
            let io = LogitsGrad::Separate { logits: m, grad: MatrixMut { data: &mut *g, rows, cols, stride: cols } };
            shard_stats_keep(io, layout, &labels, &opts, &mut local).expect("valid");
        });
        time(5, &mut || {
            let io = LogitsGrad::InPlace(MatrixMut { data: &mut *g, rows, cols, stride: cols });
            shard_backward_kept(io, layout, &labels, &opts, (&local, &merged), &[1.0]).expect("valid");
        });
        if round > 0 {
            for (v, x) in t.iter_mut().zip(times) {
                v.push(x * 1e3);
            }
        }
    }
    let med: Vec<f64> = t.iter_mut().map(|v| median(v)).collect();
    for (n, m) in names.iter().zip(&med) {
        println!("{n:>14}: {m:8.3} ms");
    }
    println!("stats + backward      ÷ fused: {:.3}", (med[2] + med[3]) / med[1]);
    println!("stats_keep + kept     ÷ fused: {:.3}", (med[4] + med[5]) / med[1]);
}
