use xent::loss::*;
fn main() {
    let (rows, cols) = (2048usize, 32000usize);
    let mut x = 1u32;
    let f: Vec<f32> = (0..rows * cols)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / 16777216.0 * 8.0 - 4.0
        })
        .collect();
    let logits: Vec<Bf16> = f.iter().map(|v| Bf16((v.to_bits() >> 16) as u16)).collect();
    let labels: Vec<i32> = (0..rows).map(|i| ((i * 7919) % cols) as i32).collect();
    let mut grad = vec![Bf16(0); rows * cols];
    let mut g32 = vec![0.0f32; rows * cols];
    let mut loss = [0.0f32];
    let opts = Options { num_threads: 1, ..Options::default() };
    let only16 = std::env::args().nth(1).is_some();
    let (mut t16, mut t32) = (vec![], vec![]);
    for _ in 0..15 {
        let t = std::time::Instant::now();
        let io = LogitsGrad::Separate {
            logits: Matrix { data: &logits, rows, cols, stride: cols },
            grad: MatrixMut { data: &mut grad, rows, cols, stride: cols },
        };
        forward_backward(io, Targets::Labels(&labels), &opts, ForwardOut { loss: &mut loss, lse: None, argmax: None })
            .unwrap();
        t16.push(t.elapsed().as_secs_f64());
        if only16 {
            t32.push(1.0);
            continue;
        }
        let t = std::time::Instant::now();
        let io = LogitsGrad::Separate {
            logits: Matrix { data: &f, rows, cols, stride: cols },
            grad: MatrixMut { data: &mut g32, rows, cols, stride: cols },
        };
        forward_backward(io, Targets::Labels(&labels), &opts, ForwardOut { loss: &mut loss, lse: None, argmax: None })
            .unwrap();
        t32.push(t.elapsed().as_secs_f64());
    }
    t16.sort_by(f64::total_cmp);
    t32.sort_by(f64::total_cmp);
    println!("bf16 {:.1} ms  f32 {:.1} ms  ratio of medians {:.3}", t16[7] * 1e3, t32[7] * 1e3, t16[7] / t32[7]);
}
