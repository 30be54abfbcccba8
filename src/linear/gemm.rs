//! Strided matrix views that can be split into disjoint tiles for threads,
//! and the one call into `matrixmultiply`.
//!
//! The views keep a raw pointer so that column tiles of one row-major matrix
//! (which interleave in memory) can go to different threads; every
//! constructor checks bounds against the slice it borrows, and splitting
//! only ever yields tiles with disjoint elements.

use core::marker::PhantomData;
use core::ops::Range;

/// A read-only `rows × cols` matrix: element `(i, j)` at `i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    ptr: *const f32,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    _data: PhantomData<&'a [f32]>,
}

// SAFETY: a View is a shared borrow of f32 values; sharing or sending it is
// as safe as sharing `&[f32]`.
unsafe impl Send for View<'_> {}
// SAFETY: as above.
unsafe impl Sync for View<'_> {}

/// Elements from the first to one past the last of a `rows × cols` matrix
/// with row stride `rs` and column stride 1; `None` if it overflows.
fn extent(rows: usize, cols: usize, rs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(rs)?.checked_add(cols)
}

fn check(len: usize, rows: usize, cols: usize, stride: usize) {
    assert!(cols <= stride || rows <= 1, "row stride {stride} is smaller than {cols} columns");
    let need = extent(rows, cols, stride).expect("matrix extent overflows");
    assert!(need <= len, "a {rows}x{cols} matrix of stride {stride} needs {need} values, the buffer has {len}");
}

impl<'a> View<'a> {
    /// Rows `i` at `data[i·stride ..][.. cols]`. Panics if `data` is too short.
    pub(super) fn new(data: &'a [f32], rows: usize, cols: usize, stride: usize) -> Self {
        check(data.len(), rows, cols, stride);
        View { ptr: data.as_ptr(), rows, cols, rs: stride, cs: 1, _data: PhantomData }
    }

    /// Number of rows.
    pub(super) fn n_rows(&self) -> usize {
        self.rows
    }

    /// The transpose (no data moves).
    pub(super) fn t(self) -> Self {
        View { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }

    /// The rows in `r`.
    pub(super) fn rows(self, r: Range<usize>) -> Self {
        assert!(r.start <= r.end && r.end <= self.rows, "rows {r:?} of {}", self.rows);
        // SAFETY: r.start ≤ rows, so the offset stays inside (or one past) the
        // borrowed extent; nothing is dereferenced when the range is empty.
        let ptr = unsafe { self.ptr.add(if r.is_empty() { 0 } else { r.start * self.rs }) };
        View { ptr, rows: r.len(), ..self }
    }

    /// The columns in `c`.
    pub(super) fn cols(self, c: Range<usize>) -> Self {
        self.t().rows(c).t()
    }

    /// Row `i` as a slice (a view made by [`View::new`], not transposed).
    pub(super) fn row(&self, i: usize) -> &'a [f32] {
        assert!(i < self.rows && self.cs == 1, "row {i} of {} (column stride {})", self.rows, self.cs);
        if self.cols == 0 {
            return &[];
        }
        // SAFETY: row i's cols consecutive elements are inside the borrowed
        // extent, and the view is a shared borrow.
        unsafe { core::slice::from_raw_parts(self.ptr.add(i * self.rs), self.cols) }
    }
}

/// A writable `rows × cols` matrix, as [`View`].
pub(super) struct ViewMut<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    rs: usize,
    _data: PhantomData<&'a mut [f32]>,
}

// SAFETY: a ViewMut is an exclusive borrow of its elements (tiles never
// share an element), so moving it to another thread is as safe as moving
// `&mut [f32]`.
unsafe impl Send for ViewMut<'_> {}

impl<'a> ViewMut<'a> {
    /// Rows `i` at `data[i·stride ..][.. cols]`. Panics if `data` is too short.
    pub(super) fn new(data: &'a mut [f32], rows: usize, cols: usize, stride: usize) -> Self {
        check(data.len(), rows, cols, stride);
        ViewMut { ptr: data.as_mut_ptr(), rows, cols, rs: stride, _data: PhantomData }
    }

    /// Splits into tiles of `w` columns (the last may be narrower): tile `t`
    /// holds columns `t·w ..`, disjoint from every other tile.
    pub(super) fn col_tiles(self, w: usize) -> Tiles<'a> {
        Tiles { m: self, step: w.max(1), next: 0, by_rows: false }
    }

    /// Splits into tiles of `h` rows, as [`ViewMut::col_tiles`].
    pub(super) fn row_tiles(self, h: usize) -> Tiles<'a> {
        Tiles { m: self, step: h.max(1), next: 0, by_rows: true }
    }

    /// Row `i` as a slice.
    pub(super) fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "row {i} of {}", self.rows);
        if self.cols == 0 {
            return &mut [];
        }
        // SAFETY: row i's cols elements are in the borrowed extent, belong to
        // this view only (tiles are disjoint), and `&mut self` keeps this the
        // only reference made through the view.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(i * self.rs), self.cols) }
    }

    /// Sets every row to `row[.. cols]`.
    pub(super) fn fill_rows(&mut self, row: &[f32]) {
        for i in 0..self.rows {
            let n = self.cols;
            self.row_mut(i).copy_from_slice(&row[..n]);
        }
    }
}

/// Disjoint column or row tiles of a [`ViewMut`], in order.
pub(super) struct Tiles<'a> {
    m: ViewMut<'a>,
    step: usize,
    next: usize,
    by_rows: bool,
}

impl<'a> Iterator for Tiles<'a> {
    type Item = (Range<usize>, ViewMut<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let total = if self.by_rows { self.m.rows } else { self.m.cols };
        if self.next >= total {
            return None;
        }
        let r = self.next..(self.next + self.step).min(total);
        self.next = r.end;
        let (offset, rows, cols) =
            if self.by_rows { (r.start * self.m.rs, r.len(), self.m.cols) } else { (r.start, self.m.rows, r.len()) };
        // SAFETY: the tile starts inside the borrowed extent and covers a
        // range of rows or columns no other tile covers.
        let ptr = unsafe { self.m.ptr.add(offset) };
        Some((r, ViewMut { ptr, rows, cols, rs: self.m.rs, _data: PhantomData }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let total = if self.by_rows { self.m.rows } else { self.m.cols };
        let n = (total - self.next.min(total)).div_ceil(self.step);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Tiles<'_> {}

/// The stride `s` between `n` rows (or columns) for matrixmultiply. With
/// one (or none) it never steps, and may be any size a single row of a
/// checked matrix has (found by the `linear` fuzz target): pass 0.
fn stride(s: usize, n: usize) -> isize {
    if n <= 1 { 0 } else { isize::try_from(s).expect("strides between checked rows fit in isize") }
}

/// `c ← a·b + beta·c` (`beta` 0 means c's old values are never read).
pub(super) fn gemm(a: View<'_>, b: View<'_>, beta: f32, c: &mut ViewMut<'_>) {
    assert!(a.rows == c.rows && b.cols == c.cols && a.cols == b.rows, "gemm shapes do not match");
    if c.rows == 0 || c.cols == 0 {
        return;
    }
    if a.cols == 0 {
        // An empty sum: c ← beta·c.
        for i in 0..c.rows {
            c.row_mut(i).iter_mut().for_each(|x| *x = if beta == 0.0 { 0.0 } else { *x * beta });
        }
        return;
    }
    // SAFETY: each view's elements lie inside the slice it was made from
    // (checked at construction and by every split), c's elements are
    // distinct (column stride 1, row stride ≥ cols) and exclusively borrowed,
    // and a and b are shared borrows that cannot alias c's exclusive one.
    // matrixmultiply spawns no threads (its `threading` feature is off).
    unsafe {
        matrixmultiply::sgemm(
            c.rows,
            a.cols,
            c.cols,
            1.0,
            a.ptr,
            stride(a.rs, a.rows),
            stride(a.cs, a.cols),
            b.ptr,
            stride(b.rs, b.rows),
            stride(b.cs, b.cols),
            beta,
            c.ptr,
            stride(c.rs, c.rows),
            1,
        );
    }
}
