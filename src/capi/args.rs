//! Validating a call's buffers before any slice exists: each pointer is
//! checked (NULL, alignment, address-space wrap), then every output against
//! every other buffer for overlap. Only after all of them pass are slices
//! made, so no aliasing `&`/`&mut` pair ever exists.

use core::mem::{align_of, size_of};

use crate::error::{ErrorKind, Result, fail};

/// A checked buffer: non-NULL (unless empty), aligned, not wrapping.
#[derive(Clone, Copy)]
pub(super) struct Region<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Region<T> {
    /// # Safety
    /// The region must be readable for `len` elements and not written by
    /// anyone while the slice lives.
    pub(super) unsafe fn slice<'a>(self) -> &'a [T] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: checked non-NULL, aligned and within the address space; the
        // caller guarantees the memory is valid.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// # Safety
    /// As `slice`, and no other live reference may overlap it.
    pub(super) unsafe fn slice_mut<'a>(self) -> &'a mut [T] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as in `slice`; overlap was excluded by `Regions::check`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A buffer of a call as the overlap check sees it.
#[derive(Clone, Copy)]
struct Extent {
    name: &'static str,
    start: usize,
    end: usize,
    output: bool,
}

/// All buffers of a call, for the overlap check.
pub(super) struct Regions {
    list: [Extent; 16],
    n: usize,
    /// What overlap the call allows, for the error message.
    allowed: &'static str,
}

impl Regions {
    pub(super) fn new(allowed: &'static str) -> Self {
        Regions { list: [Extent { name: "", start: 0, end: 0, output: false }; 16], n: 0, allowed }
    }

    fn add<T>(&mut self, name: &'static str, p: *const T, len: usize, output: bool) -> Result<Region<T>> {
        let r = Region { ptr: p as *mut T, len };
        if len == 0 {
            return Ok(r);
        }
        if p.is_null() {
            return fail(ErrorKind::NullPointer, format_args!("{name} is NULL but {len} values are needed"));
        }
        if !(p as usize).is_multiple_of(align_of::<T>()) {
            return fail(
                ErrorKind::InvalidArgument,
                format_args!("{name} is not aligned to {} bytes", align_of::<T>()),
            );
        }
        let bytes = len
            .checked_mul(size_of::<T>())
            .filter(|&b| b <= isize::MAX as usize)
            .and_then(|b| (p as usize).checked_add(b).map(|end| (b, end)));
        let Some((_, end)) = bytes else {
            return fail(ErrorKind::SizeOverflow, format_args!("{name}: {len} values overflow the address space"));
        };
        self.list[self.n] = Extent { name, start: p as usize, end, output };
        self.n += 1;
        Ok(r)
    }

    pub(super) fn input<T>(&mut self, name: &'static str, p: *const T, len: usize) -> Result<Region<T>> {
        self.add(name, p, len, false)
    }

    pub(super) fn output<T>(&mut self, name: &'static str, p: *mut T, len: usize) -> Result<Region<T>> {
        self.add(name, p, len, true)
    }

    /// An optional buffer: NULL means absent.
    pub(super) fn optional<T>(
        &mut self,
        name: &'static str,
        p: *const T,
        len: usize,
        output: bool,
    ) -> Result<Option<Region<T>>> {
        if p.is_null() { Ok(None) } else { self.add(name, p, len, output).map(Some) }
    }

    pub(super) fn check(&self) -> Result<()> {
        let l = &self.list[..self.n];
        for (i, a) in l.iter().enumerate() {
            for b in &l[i + 1..] {
                if (a.output || b.output) && a.start < b.end && b.start < a.end {
                    return fail(
                        ErrorKind::InvalidArgument,
                        format_args!("{} overlaps {} ({})", b.name, a.name, self.allowed),
                    );
                }
            }
        }
        Ok(())
    }
}
