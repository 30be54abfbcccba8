//! Each kernel path this CPU (or emulator) has against the portable path:
//! fused forward+backward on the same logits, and the exp kernel alone on
//! as many values, the paths alternating so a noisy machine (or qemu) slows
//! all alike; prints each path's median of 7 timings and its speed-up over
//! `scalar`.
//!
//!     cargo run --release --example isa_ratio -- 64 4096
//!     make isa-ratio-cross    # the aarch64 build under qemu-aarch64

use std::time::Instant;

use xent::exp_lanes;
use xent::kernels::Isa;
use xent::loss::*;

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|v| v.parse().expect("rows cols")).collect();
    let (rows, cols) = match a[..] {
        [r, c, ..] => (r, c),
        _ => (64, 4096),
    };
    let logits: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0).collect();
    let labels: Vec<i32> = (0..rows).map(|i| (i * 31 % cols) as i32).collect();
    let (mut loss, mut grad) = ([0f32], vec![0f32; rows * cols]);
    let o = Options { num_threads: 1, ..Options::default() };
    let paths: Vec<Isa> = Isa::available().collect();
    let mut fused = vec![Vec::new(); paths.len()];
    let mut exp = vec![Vec::new(); paths.len()];
    let mut out = vec![0f32; rows * cols];
    for _ in 0..7 {
        for (k, &isa) in paths.iter().enumerate() {
            Isa::override_for_this_thread(Some(isa));
            let io = LogitsGrad::Separate {
                logits: Matrix { data: &logits, rows, cols, stride: cols },
                grad: MatrixMut { data: &mut grad, rows, cols, stride: cols },
            };
            let res = ForwardOut { loss: &mut loss, lse: None, argmax: None };
            let t = Instant::now();
            forward_backward(io, Targets::Labels(&labels), &o, res).expect("valid call");
            fused[k].push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            exp_lanes(isa, &logits, &mut out, false);
            exp[k].push(t.elapsed().as_secs_f64());
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (what, times) in [("fused", &fused), ("exp", &exp)] {
        let base = median(&times[0]);
        for (k, isa) in paths.iter().enumerate() {
            let m = median(&times[k]);
            println!("{rows}x{cols} {what:>5} {:>7}: {:9.3} ms, {:.2}x scalar", isa.name(), m * 1e3, base / m);
        }
    }
}
