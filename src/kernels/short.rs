//! Batches of short rows: the rows a tile reads and writes.

/// A batch of consecutive rows of a matrix (the short-row and tile paths).
pub(crate) struct Rows<'a> {
    /// The logits rows, or `None` when `dst` holds them (in place).
    pub src: Option<&'a [f32]>,
    pub src_stride: usize,
    /// Where results are stored (fused or backward call), if anywhere.
    pub dst: Option<&'a mut [f32]>,
    pub dst_stride: usize,
    /// Number of rows.
    pub rows: usize,
    pub cols: usize,
}
