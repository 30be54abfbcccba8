//! The fused linear + cross-entropy call against its floor, alternating on
//! the same data so that a noisy machine slows both alike: each round times
//! the three plain matrixmultiply products the unfused computation needs
//! (logits = H·Wᵀ, grad_hidden = G·W, grad_weight = Gᵀ·H), then the fused
//! call; the median of the per-round ratios is the figure.
//!
//!     cargo run --release --example linear_vs_gemms -- 4096 1024 32000 [rounds] [threads]

use std::time::Instant;

use xent::linear::*;
use xent::loss::*;

#[path = "../benches/common/plain_gemm.rs"]
mod plain_gemm;
use plain_gemm::{fill, three_products};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|v| v.parse().expect("numbers")).collect();
    let (rows, dim, classes) = match a[..] {
        [r, d, c, ..] => (r, d, c),
        _ => (4096, 1024, 32000),
    };
    let rounds = a.get(3).copied().unwrap_or(5);
    let threads = a.get(4).copied().unwrap_or(1) as u32;
    let hidden = fill(rows * dim, 7, 1.0);
    let weight = fill(classes * dim, 8, 1.0 / (dim as f32).sqrt());
    let labels: Vec<i32> = (0..rows).map(|i| ((i * 7919) % classes) as i32).collect();
    let mut logits = vec![0.0f32; rows * classes];
    let mut gh = vec![0.0f32; rows * dim];
    let mut gw = vec![0.0f32; classes * dim];
    let mut gb = vec![0.0f32; classes];
    let mut ws = vec![0.0f32; workspace_len(rows, dim, classes).expect("size")];
    let opts = Options { num_threads: threads, ..Options::default() };
    let lin = Linear {
        hidden: Matrix { data: &hidden, rows, cols: dim, stride: dim },
        weight: Matrix { data: &weight, rows: classes, cols: dim, stride: dim },
        bias: None,
    };
    let (mut t_gemm, mut t_fused, mut ratio) = (vec![], vec![], vec![]);
    println!("{rows}x{dim}x{classes}, {threads} thread(s) for the fused call (the three products run on one)");
    for round in 0..=rounds {
        let t = Instant::now();
        three_products((rows, dim, classes), &hidden, &weight, &mut logits, &mut gh, &mut gw);
        let g = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut loss = [0.0f32];
        let out = ForwardOut { loss: &mut loss, lse: None, argmax: None };
        let grads = LinearGrads {
            hidden: Some(MatrixMut { data: &mut gh, rows, cols: dim, stride: dim }),
            weight: Some(MatrixMut { data: &mut gw, rows: classes, cols: dim, stride: dim }),
            bias: Some(&mut gb),
        };
        linear_forward_backward(lin, &labels, &opts, out, grads, Some(&mut ws)).expect("valid call");
        let f = t.elapsed().as_secs_f64();
        if round == 0 {
            continue; // warm-up: page faults of the outputs and workspace
        }
        println!("round {round}: three products {g:.3} s, fused call {f:.3} s, ratio {:.3}", f / g);
        t_gemm.push(g);
        t_fused.push(f);
        ratio.push(f / g);
    }
    println!(
        "median: three products {:.3} s, fused call {:.3} s, median ratio {:.3}",
        median(&mut t_gemm),
        median(&mut t_fused),
        median(&mut ratio)
    );
}
