//! The one error type of the safe API: a class ([`ErrorKind`], which the C
//! API's status codes map one to one) and a precise message held inline, so
//! that failing never allocates.

use core::fmt;

/// The class of a failure; the C API's `XentStatus` codes map one to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A required pointer was NULL (C API only).
    NullPointer,
    /// Sizes or strides do not describe a valid matrix, or buffers are too short.
    InvalidShape,
    /// An option or buffer arrangement is invalid.
    InvalidArgument,
    /// A label is outside `[0, classes)` and is not `ignore_index`.
    LabelOutOfRange,
    /// A size computation overflowed.
    SizeOverflow,
    /// Memory for the threaded path could not be allocated.
    AllocationFailed,
    /// A bug: a panic was caught, or a caller's pool skipped tasks.
    Internal,
    /// The call needs what this build left out (the `std` feature).
    Unsupported,
}

/// A failure with its class and a precise message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The class of failure.
    pub kind: ErrorKind,
    /// What exactly was wrong.
    pub message: Message,
}

impl Error {
    /// An error of `kind` with `message` (a `&str`, or `format_args!` for a
    /// formatted one; formatting allocates nothing).
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Error { kind, message: Message::of(message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// An error message of at most [`Message::capacity`] bytes of UTF-8, held
/// inline so that failing never allocates; a longer text is cut at a
/// character boundary and ends in "...".
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    len: u8,
    bytes: [u8; CAPACITY],
}

/// The longest message kept, in bytes (fits the `u8` length).
const CAPACITY: usize = 240;

impl Message {
    /// The longest message kept, in bytes.
    pub const fn capacity() -> usize {
        CAPACITY
    }

    /// `text` formatted into a message.
    pub fn of(text: impl fmt::Display) -> Message {
        let mut m = Message { len: 0, bytes: [0; CAPACITY] };
        // `write_str` fails only to stop the text once it was cut.
        let _ = fmt::write(&mut m, format_args!("{text}"));
        m
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // `write_str` only ever appends whole characters.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const MORE: &str = "...";
        let len = usize::from(self.len);
        let room = CAPACITY - len;
        let fits = if s.len() <= room {
            s.len()
        } else {
            // Cut at a character boundary, leaving room for the marker.
            let mut n = room.saturating_sub(MORE.len());
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            n
        };
        self.bytes[len..len + fits].copy_from_slice(&s.as_bytes()[..fits]);
        let mut end = len + fits;
        if fits < s.len() && end + MORE.len() <= CAPACITY {
            self.bytes[end..end + MORE.len()].copy_from_slice(MORE.as_bytes());
            end += MORE.len();
        }
        // CAPACITY fits a u8.
        self.len = end as u8;
        // A cut message takes no more text.
        if fits < s.len() { Err(fmt::Error) } else { Ok(()) }
    }
}

impl core::ops::Deref for Message {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result of the safe API.
pub type Result<T> = core::result::Result<T, Error>;

/// `Err` of `kind` with `message`: the one way the crate fails.
#[inline(never)]
#[cold]
pub(crate) fn fail<T>(kind: ErrorKind, message: impl fmt::Display) -> Result<T> {
    Err(Error::new(kind, message))
}
