//! How errors read: the one rule every error type of the framework follows,
//! and [`Chain`], which prints an error with its causes.
//!
//! # The rule
//!
//! An error's `Display` says what went wrong **at its own layer** and
//! nothing more; the error beneath it, when there is one, is its
//! [`source()`](std::error::Error::source), never repeated in the text.
//! This is the convention of `std`, `anyhow` and `tracing`: a program that
//! logs or reports an error walks the chain once, and no layer's words
//! appear twice. Errors with nothing beneath them (a value that does not
//! parse, a job id that is not known) say everything in `Display` and have
//! no `source()`. An error that only wraps another, adding nothing, is
//! `#[error(transparent)]`: its `Display` and `source()` are the inner
//! error's.
//!
//! So `format!("{error}")` of a [`DispatchError::Enqueue`] says only that
//! the jobs could not be enqueued; **print an error with [`Chain`]** to see
//! why (`database or disk is full`). The operator commands, the worker's
//! logs and the failed store's `error` text all do.
//!
//! [`DispatchError::Enqueue`]: crate::DispatchError::Enqueue

use std::error::Error;
use std::fmt;

/// An error and its causes, printed `outer: cause: root cause`: how the
/// operator commands, the worker's logs and the failed store show an error.
///
/// ```
/// use events::error::Chain;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot save the invoice")]
/// struct SaveError(#[source] std::io::Error);
///
/// let disk = std::io::Error::other("database or disk is full");
/// let error = SaveError(disk);
/// assert_eq!(error.to_string(), "cannot save the invoice");
/// assert_eq!(
///     Chain(&error).to_string(),
///     "cannot save the invoice: database or disk is full"
/// );
/// ```
///
/// In a `tracing` event, as a field: `tracing::error!(error = %Chain(&e), "..")`.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn a_chain_prints_every_layer_once_outermost_first() {
        let error = Outer(Middle(std::io::Error::other("disk full")));
        assert_eq!(Chain(&error).to_string(), "outer: middle: disk full");
        let alone = std::io::Error::other("alone");
        assert_eq!(Chain(&alone).to_string(), "alone");
    }
}
