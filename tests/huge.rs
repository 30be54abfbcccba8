//! Offsets are 64-bit everywhere (PyTorch #85005 was a 32-bit one): calls
//! on more than 2³¹ logits, in buffers that are mostly never-touched zero
//! pages (calloc'd, so they cost address space, not memory), with the
//! values that matter placed beyond element 2³¹.

use core::ptr::null_mut;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use xent::capi::*;

/// A zeroed buffer of `n` floats from the allocator's lazily mapped pages.
struct Zeroed {
    ptr: *mut f32,
    layout: Layout,
}

impl Zeroed {
    fn new(n: usize) -> Option<Zeroed> {
        let layout = Layout::array::<f32>(n).ok()?;
        // SAFETY: a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) } as *mut f32;
        (!ptr.is_null()).then_some(Zeroed { ptr, layout })
    }
    fn set(&mut self, i: usize, v: f32) {
        assert!(i < self.layout.size() / 4);
        // SAFETY: in bounds (checked above).
        unsafe { self.ptr.add(i).write(v) }
    }
    fn get(&self, i: usize) -> f32 {
        assert!(i < self.layout.size() / 4);
        // SAFETY: in bounds (checked above).
        unsafe { self.ptr.add(i).read() }
    }
}

impl Drop for Zeroed {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout.
        unsafe { dealloc(self.ptr as *mut u8, self.layout) }
    }
}

/// The loss of a row of `n` zeros but for `v` at the label: lse − v.
fn row_loss(n: usize, v: f64) -> (f64, f64) {
    let lse = v + ((n - 1) as f64 * (-v).exp() + 1.0).ln();
    (lse - v, lse)
}

#[test]
fn three_rows_of_800_million_classes() {
    const ROWS: usize = 3;
    const COLS: usize = 800_000_000;
    const { assert!(ROWS * COLS > 1 << 31) };
    let Some(mut logits) = Zeroed::new(ROWS * COLS) else {
        panic!("cannot reserve {} GB of address space", (ROWS * COLS * 4) >> 30);
    };
    // Labels beyond element 2^31: row 2's is the matrix's last element.
    let labels = [7i32, 123_456_789, (COLS - 1) as i32];
    let values = [20.0f32, 25.0, 30.0];
    for i in 0..ROWS {
        logits.set(i * COLS + labels[i] as usize, values[i]);
    }
    let (mut loss, mut lse, mut argmax) = ([0f32; ROWS], [0f32; ROWS], [0i32; ROWS]);
    let mut o = xent_options_default();
    o.reduction = XENT_REDUCTION_NONE;
    // SAFETY: the buffer holds ROWS × COLS floats; outputs hold ROWS values.
    let s = unsafe {
        xent_forward(
            logits.ptr,
            ROWS,
            COLS,
            COLS,
            labels.as_ptr(),
            &o,
            loss.as_mut_ptr(),
            lse.as_mut_ptr(),
            argmax.as_mut_ptr(),
        )
    };
    assert_eq!(s, XENT_STATUS_OK);
    for i in 0..ROWS {
        let (want_loss, want_lse) = row_loss(COLS, f64::from(values[i]));
        assert_eq!(argmax[i], labels[i], "argmax of row {i}");
        assert!((f64::from(lse[i]) - want_lse).abs() < 1e-5 * want_lse, "lse[{i}] {} vs {want_lse}", lse[i]);
        assert!((f64::from(loss[i]) - want_loss).abs() < 1e-4 * want_loss, "loss[{i}] {} vs {want_loss}", loss[i]);
    }
    // The sum over the rows, through the threaded path.
    o.reduction = XENT_REDUCTION_SUM;
    o.num_threads = 2;
    let mut total = [0f32];
    // SAFETY: as above.
    let s = unsafe {
        xent_forward(logits.ptr, ROWS, COLS, COLS, labels.as_ptr(), &o, total.as_mut_ptr(), null_mut(), null_mut())
    };
    assert_eq!(s, XENT_STATUS_OK);
    let want: f64 = (0..ROWS).map(|i| row_loss(COLS, f64::from(values[i])).0).sum();
    assert!((f64::from(total[0]) - want).abs() < 1e-4 * want, "sum {} vs {want}", total[0]);
}

#[test]
fn a_gradient_row_beyond_element_2_31() {
    // Two rows 2^31 + 17 elements apart: the second starts 8 GiB in.
    const COLS: usize = 1000;
    let stride = (1usize << 31) + 17;
    let n = stride + COLS;
    let Some(mut buf) = Zeroed::new(n) else {
        panic!("cannot reserve {} GB of address space", (n * 4) >> 30);
    };
    let dense: Vec<f32> = (0..2 * COLS).map(|i| ((i * 37) % 101) as f32 * 0.1 - 5.0).collect();
    for i in 0..2 {
        for j in 0..COLS {
            buf.set(i * stride + j, dense[i * COLS + j]);
        }
    }
    let labels = [3i32, 999];
    let o = xent_options_default();
    let (mut loss, mut want_loss) = ([0f32], [0f32]);
    let mut want = vec![0f32; 2 * COLS];
    // SAFETY: `dense` holds 2 × COLS floats; `buf` holds (2 − 1) × stride +
    // COLS, and is its own gradient (in place, same stride).
    unsafe {
        let s = xent_forward_backward(
            dense.as_ptr(),
            2,
            COLS,
            COLS,
            labels.as_ptr(),
            &o,
            want_loss.as_mut_ptr(),
            null_mut(),
            null_mut(),
            want.as_mut_ptr(),
            COLS,
        );
        assert_eq!(s, XENT_STATUS_OK);
        let s = xent_forward_backward(
            buf.ptr,
            2,
            COLS,
            stride,
            labels.as_ptr(),
            &o,
            loss.as_mut_ptr(),
            null_mut(),
            null_mut(),
            buf.ptr,
            stride,
        );
        assert_eq!(s, XENT_STATUS_OK);
    }
    assert_eq!(loss[0].to_bits(), want_loss[0].to_bits());
    for i in 0..2 {
        for j in 0..COLS {
            assert_eq!(buf.get(i * stride + j).to_bits(), want[i * COLS + j].to_bits(), "grad[{i}][{j}]");
        }
    }
    // Nothing between the rows was written.
    for j in [COLS, COLS + 1, stride / 2, stride - 1] {
        assert_eq!(buf.get(j), 0.0, "padding element {j}");
    }
}
