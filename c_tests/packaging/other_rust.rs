//! A second Rust static library, as another vendor's would be: it has its
//! own copy of std (panics, unwinding, threads), so every symbol the two
//! archives both define globally would clash in one link.
use std::panic;

/// Sums `n` values on a thread, catching a deliberate panic first.
#[unsafe(no_mangle)]
pub extern "C" fn other_rust_sum(values: *const f64, n: usize) -> f64 {
    let caught = panic::catch_unwind(|| panic!("caught inside other_rust"));
    assert!(caught.is_err());
    // SAFETY: the caller passes `n` readable values.
    let v: Vec<f64> = unsafe { std::slice::from_raw_parts(values, n) }.to_vec();
    std::thread::spawn(move || v.iter().sum()).join().unwrap_or(f64::NAN)
}
