//! The vector exp against float64, over every float in [ln FLT_MIN, 0].

use xent::kernels::{Isa, exp_lanes, fma_lanes, log_lanes};

const BATCH: usize = 1 << 20;

/// Distance in units in the last place of the f32 nearest `exact`.
fn ulps(got: f32, exact: f64) -> f64 {
    let nearest = exact as f32;
    let ulp = f64::from(f32::from_bits(nearest.to_bits() + 1) - nearest);
    (f64::from(got) - exact).abs() / ulp
}

/// Sweeps the bit patterns `[lo, hi)` with `step`, a batch at a time (so
/// the wasm32 run's memory stays small), through `lanes`, and returns the
/// worst ULP error against the float64 `exact` and where it was seen. An
/// exact zero must come out as zero.
fn sweep_with(
    lo: u32,
    hi: u32,
    step: u32,
    lanes: impl Fn(&[f32], &mut [f32]),
    exact: impl Fn(f64) -> f64,
) -> (f64, f32) {
    let mut xs = Vec::with_capacity(BATCH);
    let mut out = vec![0.0f32; BATCH];
    let mut worst = (0.0, 0.0);
    let mut bits = lo;
    while bits < hi {
        xs.clear();
        while xs.len() < BATCH && bits < hi {
            xs.push(f32::from_bits(bits));
            bits = bits.saturating_add(step);
        }
        lanes(&xs, &mut out[..xs.len()]);
        for (&x, &y) in xs.iter().zip(&out) {
            let want = exact(f64::from(x));
            let e = if want == 0.0 { if y == 0.0 { 0.0 } else { f64::INFINITY } } else { ulps(y, want) };
            if e > worst.0 {
                worst = (e, x);
            }
        }
    }
    worst
}

/// The worst ULP error of `exp` on `[lo, hi)` with `step`.
fn sweep(isa: Isa, lo: u32, hi: u32, step: u32) -> (f64, f32) {
    sweep_with(lo, hi, step, |xs, out| exp_lanes(isa, xs, out, false), f64::exp)
}

#[test]
fn exp_is_within_2_ulp_on_the_softmax_domain_exhaustively() {
    // Negative floats from -0.0 up to ln(FLT_MIN) = -87.33654: every one.
    let lo = 0x8000_0000u32;
    let hi = (-87.336_54f32).to_bits() + 1;
    let isa = Isa::active();
    let mid = lo + (hi - lo) / 2;
    // Two threads where there are threads (not on wasm32-wasip1).
    let (a, b) =
        std::thread::scope(|sc| match std::thread::Builder::new().spawn_scoped(sc, || sweep(isa, lo, mid, 1)) {
            Ok(h) => {
                let b = sweep(isa, mid, hi, 1);
                (h.join().unwrap(), b)
            }
            Err(_) => (sweep(isa, lo, mid, 1), sweep(isa, mid, hi, 1)),
        });
    let worst = if a.0 > b.0 { a } else { b };
    println!("{}: worst {:.3} ulp at {}", isa.name(), worst.0, worst.1);
    assert!(worst.0 <= 2.0, "{worst:?}");
}

/// Positive arguments reach `exp` where the gradient's shift is not the
/// row's max (a given lse, a softcap's tanh): every float up to 88.37,
/// where the result still fits, sampled with a stride (the exhaustive sweep
/// above covers the softmax domain), and +inf above.
#[test]
fn exp_is_within_2_ulp_on_positive_arguments_and_inf_above_88_37() {
    let hi = 88.376_26f32.to_bits() + 1;
    let worst = sweep(Isa::active(), 0, hi, 7);
    println!("{}: positive worst {:.3} ulp at {}", Isa::active().name(), worst.0, worst.1);
    assert!(worst.0 <= 2.0, "{worst:?}");
    let xs = [88.377f32, 89.0, 1e4, f32::INFINITY];
    for isa in Isa::available() {
        let mut out = [0.0f32; 4];
        exp_lanes(isa, &xs, &mut out, false);
        assert_eq!(out, [f32::INFINITY; 4], "{}", isa.name());
    }
}

#[test]
fn exp_is_exactly_zero_below_ln_flt_min_and_propagates_nan() {
    let xs = [-87.34f32, -88.0, -100.0, -1e4, f32::NEG_INFINITY, f32::NAN, 0.0, -0.0];
    for isa in Isa::available() {
        let mut out = [1.0f32; 8];
        exp_lanes(isa, &xs, &mut out, false);
        assert_eq!(&out[..5], &[0.0; 5], "{}", isa.name());
        assert!(out[5].is_nan());
        assert_eq!(out[6], 1.0);
        assert_eq!(out[7], 1.0);
    }
}

/// Every path must give the bits of the portable path (a strided sweep over
/// the softmax domain and beyond, which the scalar path is too slow to sweep
/// exhaustively).
#[test]
fn exp_and_log_give_identical_bits_on_every_path() {
    let xs: Vec<f32> = (0u32..(1 << 22)).map(|i| f32::from_bits(0x8000_0000 + i * 509)).collect();
    let pos: Vec<f32> = (0u32..(1 << 22)).map(|i| f32::from_bits(0x0080_0000 + i * 503)).collect();
    let mut want = vec![0.0f32; xs.len()];
    let mut want_log = vec![0.0f32; pos.len()];
    exp_lanes(Isa::Scalar, &xs, &mut want, false);
    log_lanes(Isa::Scalar, &pos, &mut want_log);
    for isa in Isa::available() {
        let mut got = vec![0.0f32; xs.len()];
        exp_lanes(isa, &xs, &mut got, false);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "exp({}) on {}", xs[i], isa.name());
        }
        log_lanes(isa, &pos, &mut got);
        for (i, (a, b)) in got.iter().zip(&want_log).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "ln({}) on {}", pos[i], isa.name());
        }
    }
}

#[test]
fn log_is_within_2_ulp_on_positive_normals() {
    let isa = Isa::active();
    // Every float in [1, 128) (where softmax sums of up to 128 classes live),
    // and a strided sweep over all positive normal floats.
    for (lo, hi, step) in [(1.0f32.to_bits(), 128.0f32.to_bits(), 1), (0x0080_0000u32, 0x7f80_0000, 97)] {
        let worst = sweep_with(lo, hi, step, |xs, out| log_lanes(isa, xs, out), f64::ln);
        println!("{}: log worst {:.3} ulp at {}", isa.name(), worst.0, worst.1);
        assert!(worst.0 <= 2.0, "{worst:?}");
    }
}

/// Every path's fused multiply-add rounds once, as `f32::mul_add`: on random
/// operands, and where the exact `a·b` lies on a float32 halfway point and
/// `c` is far below float64's precision of it (the case that rounding a
/// float64 sum twice gets wrong, and that the simd128 path corrects),
/// across exponents down to subnormal results.
#[test]
fn fused_multiply_add_rounds_once_on_every_path() {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..(1 << 16) {
        let r = next();
        let e =
            |k: u64| f32::from_bits(((r >> k) as u32 & 0x807f_ffff) | ((((r >> (k + 23)) % 120) as u32 + 67) << 23));
        a.push(e(0));
        b.push(e(20));
        c.push(e(40));
    }
    // a = (1 + u·2⁻¹²)·2^s, b = 1 + v·2⁻¹² with u, v odd: a·b is a halfway
    // point of float32 (its 2⁻²⁴·2^s bit is set, none below).
    for u in (1..2048u32).step_by(97) {
        for v in (1..2048u32).step_by(89) {
            for scale in [-140, -130, -126, -100, -20, 0, 1, 40, 100] {
                for tiny in [0.0, 1.0, -1.0, 0.5, -0.5] {
                    for k in [30, 53, 60, 80] {
                        let p2 = 2f32.powi(scale);
                        let x = (1.0 + u as f32 / 4096.0) * p2;
                        let y = 1.0 + v as f32 / 4096.0;
                        let z = tiny * 2f32.powi(scale - k).max(f32::from_bits(1) * (tiny != 0.0) as u8 as f32);
                        for sign in [1.0f32, -1.0] {
                            a.push(sign * x);
                            b.push(y);
                            c.push(sign * z);
                        }
                    }
                }
            }
        }
    }
    a.extend([f32::INFINITY, f32::NAN, 0.0, -0.0, f32::MAX, f32::MIN_POSITIVE]);
    b.extend([0.0, 1.0, -0.0, 0.0, 2.0, 0.5]);
    c.extend([1.0, 1.0, 0.0, -0.0, -f32::MAX, f32::from_bits(1)]);
    // The platform's fmaf is the oracle, except on Windows, where MinGW-w64's
    // is not correctly rounded (xent takes the libm crate's there).
    #[cfg(not(windows))]
    let fma = |x: f32, y: f32, z: f32| x.mul_add(y, z);
    #[cfg(windows)]
    let fma = libm::fmaf;
    let want: Vec<f32> = a.iter().zip(&b).zip(&c).map(|((&x, &y), &z)| fma(x, y, z)).collect();
    for isa in Isa::available() {
        let mut got = vec![0.0f32; a.len()];
        fma_lanes(isa, &a, &b, &c, &mut got);
        for i in 0..a.len() {
            let same = got[i].to_bits() == want[i].to_bits() || (got[i].is_nan() && want[i].is_nan());
            assert!(same, "{}: fma({:e}, {:e}, {:e}) = {:e}, want {:e}", isa.name(), a[i], b[i], c[i], got[i], want[i]);
        }
    }
}

/// Streamed stores (AVX-512 joins a misaligned row's vectors into aligned
/// lines) write exactly what plain stores write, and nothing outside the
/// output, for every length and every alignment of the output.
#[test]
fn streamed_stores_equal_plain_stores() {
    let xs: Vec<f32> = (0..300).map(|i| (i as f32 * 0.37).sin() * 20.0 - 10.0).collect();
    for isa in Isa::available() {
        for len in (0..70).chain([255, 256, 257, 300]) {
            let mut want = vec![0.0f32; len];
            exp_lanes(isa, &xs[..len], &mut want, false);
            // 16 float offsets from a 64-byte boundary, with a guard each side.
            let mut buf = vec![-7.0f32; len + 64];
            let base = buf.as_ptr().align_offset(64);
            for skew in 0..16 {
                buf.fill(-7.0);
                let at = base + skew + 1;
                exp_lanes(isa, &xs[..len], &mut buf[at..at + len], true);
                assert_eq!(
                    buf[at..at + len].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{isa:?} len {len} skew {skew}"
                );
                assert!(buf[..at].iter().chain(&buf[at + len..]).all(|&v| v == -7.0), "{isa:?} len {len} skew {skew}");
            }
        }
    }
}
