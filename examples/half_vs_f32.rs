//! bfloat16 against float32 fused forward+backward, alternating on the same
//! values so that a noisy machine slows both alike; prints the median of 15
//! timings of each and their ratio.
//!
//!     cargo run --release --example half_vs_f32 -- 2048 32000

use std::time::Instant;

use xent::loss::*;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|v| v.parse().expect("rows cols")).collect();
    let (rows, cols) = match a[..] {
        [r, c, ..] => (r, c),
        _ => (2048, 32000),
    };
    let mut x = 1u32;
    // Values that are exact in bfloat16, so both calls see the same logits.
    let f: Vec<f32> = (0..rows * cols)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f32::from_bits(((x >> 8) as f32 / 16_777_216.0 * 8.0 - 4.0).to_bits() & 0xffff_0000)
        })
        .collect();
    let logits: Vec<Bf16> = f.iter().map(|v| Bf16((v.to_bits() >> 16) as u16)).collect();
    let labels: Vec<i32> = (0..rows).map(|i| ((i * 7919) % cols) as i32).collect();
    let mut g16 = vec![Bf16(0); rows * cols];
    let mut g32 = vec![0.0f32; rows * cols];
    let (mut loss16, mut loss32) = ([0.0f32], [0.0f32]);
    let opts = Options { num_threads: 1, ..Options::default() };
    let (mut t16, mut t32) = (vec![], vec![]);
    for round in 0..16 {
        let t = Instant::now();
        let io = LogitsGrad::Separate {
            logits: Matrix { data: &logits, rows, cols, stride: cols },
            grad: MatrixMut { data: &mut g16, rows, cols, stride: cols },
        };
        let out = ForwardOut { loss: &mut loss16, lse: None, argmax: None };
        forward_backward(io, Targets::Labels(&labels), &opts, out).expect("valid");
        let a = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let io = LogitsGrad::Separate {
            logits: Matrix { data: &f, rows, cols, stride: cols },
            grad: MatrixMut { data: &mut g32, rows, cols, stride: cols },
        };
        let out = ForwardOut { loss: &mut loss32, lse: None, argmax: None };
        forward_backward(io, Targets::Labels(&labels), &opts, out).expect("valid");
        let b = t.elapsed().as_secs_f64();
        if round > 0 {
            t16.push(a);
            t32.push(b);
        }
    }
    assert_eq!(loss16[0].to_bits(), loss32[0].to_bits(), "the two calls must agree");
    let (m16, m32) = (median(&mut t16), median(&mut t32));
    println!("{rows}x{cols}, 1 thread: bf16 {:.1} ms, float32 {:.1} ms, ratio {:.3}", m16 * 1e3, m32 * 1e3, m16 / m32);
}
