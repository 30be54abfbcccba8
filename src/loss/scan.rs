//! The one pass over a row that finds its max and Σexp: the row is walked in
//! L1-sized chunks, each read once from memory and then exponentiated while
//! it is still in L1 (an online softmax: the running sum is rescaled when a
//! later chunk raises the max). Optionally it also stores the chunk's
//! `exp(z − base)` (the fused call's one exp per logit) or, under a softcap,
//! `tanh(z/cap)`, and accumulates the coefficient dot products the label
//! smoothing and probability targets need.

use crate::kernels::{self, Coef, Io, Isa, Logit};

/// At most this many chunks per row; longer rows get longer chunks.
pub(crate) const MAX_CHUNKS: usize = 64;
/// Elements per chunk for rows up to 64·1024 classes (16 KiB in L1 with its store).
const CHUNK: usize = 1024;

/// Elements per chunk for rows of `cols` classes: a multiple of 1024, so the
/// 16-lane layout and the 1024-element partial sums are those of the row.
pub(crate) fn chunk_len(cols: usize) -> usize {
    CHUNK * cols.div_ceil(CHUNK * MAX_CHUNKS).max(1)
}

/// What the scan reads and writes.
pub(crate) enum RowIo<'a, 'b> {
    /// Only read the row (forward, backward); the softcap is applied on the fly.
    Read(&'a [f32]),
    /// Fused call: read `src` (or `dst` in place) and store into `dst`:
    /// `exp(z − base)` without a softcap, `tanh(z / cap)` with one.
    Store { src: Option<&'a [f32]>, dst: &'b mut [f32] },
}

/// 16-bit logits for an in-place `Store`: `dst` is filled from them (widened
/// exactly) one chunk ahead of its use, so each chunk goes from the 16-bit
/// row to L1 and is consumed there.
#[derive(Clone, Copy)]
pub(crate) struct Widen<'a> {
    pub kind: kernels::Half,
    pub src: &'a [u16],
}

/// Widens `src[*done..upto]` into `dst` (the 16-bit rows of [`RowIo::Widen`]).
fn widen_to(isa: Isa, kind: kernels::Half, src: &[u16], dst: &mut [f32], done: &mut usize, upto: usize) {
    if upto > *done {
        kernels::half::widen(isa, kind, &src[*done..upto], &mut dst[*done..upto]);
        *done = upto;
    }
}

/// What the scan found.
pub(crate) struct Scan {
    /// Row maximum of `z'` (NaN skipped; −inf if every value is −inf or NaN).
    pub max: f32,
    /// `Σ exp(z'_j − max)`; NaN if a logit is NaN or +inf (or all are −inf).
    pub sum: f64,
    /// `Σ c_j` and `Σ c_j (z'_j − max)` when coefficients were given.
    pub total: f64,
    pub dot: f64,
    /// `z'` and `t` at the label, when one was given.
    pub zy: f32,
    pub ty: f32,
    /// How the row is stored after the scan (`Raw` or `Tanh(cap)`).
    pub stored: Logit,
    /// The shift each chunk's stored exps are relative to (−inf for a chunk
    /// whose stored exps are all 0 or NaN).
    pub chunk_base: [f32; MAX_CHUNKS],
    pub chunk: usize,
}

impl Scan {
    /// The factor that takes chunk `c`'s stored exps to the row's max:
    /// `exp(base_c − max)` (0 for a chunk of only −inf values).
    pub(crate) fn rescale(&self, c: usize) -> f64 {
        crate::fmath::exp(f64::from(self.chunk_base[c]) - f64::from(self.max))
    }
}

/// Scans a row; see the module docs. `coef` (unscaled) is dotted with
/// `z' − max` when given; `label` is where `zy`/`ty` are read; `next` is the
/// next row, prefetched along the way.
pub(crate) fn scan(
    isa: Isa,
    mut io: RowIo<'_, '_>,
    how: Logit,
    coef: Option<Coef<'_>>,
    label: Option<usize>,
    (next, half): (&[f32], Option<Widen<'_>>),
) -> Scan {
    let cols = match &io {
        RowIo::Read(r) => r.len(),
        RowIo::Store { dst, .. } => dst.len(),
    };
    // With 16-bit logits, how far `dst` holds them widened.
    let mut widened = 0;
    debug_assert!(half.is_none() || matches!(io, RowIo::Store { src: None, .. }));
    let chunk = chunk_len(cols);
    let stored = match (&io, how) {
        (RowIo::Store { .. }, Logit::Softcap(cap)) => Logit::Tanh(cap),
        _ => how,
    };
    let mut s = Scan {
        max: f32::NEG_INFINITY,
        sum: 0.0,
        total: 0.0,
        dot: 0.0,
        zy: 0.0,
        ty: 0.0,
        stored,
        chunk_base: [0.0; MAX_CHUNKS],
        chunk,
    };
    // Sums are kept relative to `base`: the running max, or 0 while every
    // value so far is −inf (so that exp(−inf − base) is 0, not NaN).
    let mut base = 0.0f32;
    // Raw logits: the next chunk's max is taken inside this chunk's exp loop.
    let mut pending_max: Option<f32> = None;
    for (c, start) in (0..cols).step_by(chunk).enumerate() {
        let r = start..(start + chunk).min(cols);
        if let (Some(h), RowIo::Store { dst, .. }) = (half, &mut io) {
            // This chunk and the next (whose max the exp loop takes).
            widen_to(isa, h.kind, h.src, dst, &mut widened, (r.end + chunk).min(cols));
        }
        // 1. The chunk's max (storing tanh under a softcap in a fused call).
        let m = if let Some(m) = pending_max.take() {
            m
        } else {
            match &mut io {
                RowIo::Read(row) => kernels::max(isa, &row[r.clone()], how),
                RowIo::Store { src, dst } => match how {
                    Logit::Softcap(cap) => {
                        let io = match src {
                            Some(src) => Io::Map(&src[r.clone()], &mut dst[r.clone()]),
                            None => Io::InPlace(&mut dst[r.clone()]),
                        };
                        cap * kernels::tanh_store_max(isa, io, cap)
                    }
                    _ => kernels::max(isa, &src.unwrap_or(dst)[r.clone()], Logit::Raw),
                },
            }
        };
        if m > s.max {
            let new_base = m;
            let shift = f64::from(base) - f64::from(new_base);
            if s.sum != 0.0 {
                s.sum *= crate::fmath::exp(shift);
            }
            if s.total != 0.0 || s.dot != 0.0 {
                s.dot += s.total * shift;
            }
            base = new_base;
            s.max = m;
        }
        // Stored exps of an all −inf prefix are 0 whatever the base: mark the
        // chunk so its rescale factor is exp(−inf) = 0 rather than exp(−max).
        s.chunk_base[c] = if s.max == f32::NEG_INFINITY { f32::NEG_INFINITY } else { base };
        // 2. Reads that must precede the store: the label's z', the dots.
        let view: &[f32] = match &io {
            RowIo::Read(row) => &row[r.clone()],
            RowIo::Store { src, dst } => match stored {
                Logit::Tanh(_) => &dst[r.clone()],
                _ => &src.unwrap_or(dst)[r.clone()],
            },
        };
        if let Some(y) = label.filter(|y| r.contains(y)) {
            (s.zy, s.ty) = kernels::logit_one(view[y - r.start], stored);
        }
        if let Some(cf) = coef {
            let (t, d) = kernels::coef_dot(isa, view, stored, base, cf.slice(r.clone()));
            s.total += t;
            s.dot += d;
        }
        // 3. Σexp of the chunk while it is in L1, storing exp when fused
        //    (and, for raw logits, the next chunk's max in the same loop).
        let ahead = next.get(r.clone()).unwrap_or(&[]);
        let rn = r.end..(r.end + chunk).min(cols);
        if how == Logit::Raw && !rn.is_empty() {
            let (sum, m_next) = match &mut io {
                RowIo::Read(row) => kernels::sum_exp_max_ahead(isa, Io::Read(&row[r.clone()]), base, &row[rn], ahead),
                RowIo::Store { src: Some(src), dst } => {
                    let io = Io::Map(&src[r.clone()], &mut dst[r.clone()]);
                    kernels::sum_exp_max_ahead(isa, io, base, &src[rn], ahead)
                }
                RowIo::Store { src: None, dst } => {
                    let (cur, rest) = dst.split_at_mut(r.end);
                    kernels::sum_exp_max_ahead(isa, Io::InPlace(&mut cur[r.clone()]), base, &rest[..rn.len()], ahead)
                }
            };
            s.sum += sum;
            pending_max = Some(m_next);
            continue;
        }
        s.sum += match (&mut io, stored) {
            (RowIo::Store { src: Some(src), dst }, Logit::Raw) => {
                kernels::sum_exp(isa, Io::Map(&src[r.clone()], &mut dst[r.clone()]), Logit::Raw, base, ahead)
            }
            (RowIo::Store { src: None, dst }, Logit::Raw) => {
                kernels::sum_exp(isa, Io::InPlace(&mut dst[r.clone()]), Logit::Raw, base, ahead)
            }
            (RowIo::Store { dst, .. }, _) => kernels::sum_exp(isa, Io::Read(&dst[r.clone()]), stored, base, ahead),
            (RowIo::Read(row), _) => kernels::sum_exp(isa, Io::Read(&row[r.clone()]), how, base, ahead),
        };
    }
    if s.max == f32::NEG_INFINITY {
        s.sum = f64::NAN;
    }
    s
}
