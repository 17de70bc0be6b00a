//! The netlink driver's error: which operation failed, and why.

use std::io;

/// A failed netlink operation. `op` spells the request like iproute2 would
/// (`route replace 198.18.1.0/24 via 198.18.0.2`), so the message alone says what to retry.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel (or the connection) refused the request.
    #[error("netlink {op}: {source}")]
    Request {
        /// The operation, in iproute2 words.
        op: String,
        /// The rtnetlink error, with the kernel's errno when there is one.
        #[source]
        source: rtnetlink::Error,
    },
    /// A local I/O failure (socket or runtime creation).
    #[error("netlink {op}: {source}")]
    Io {
        /// The operation, in iproute2 words.
        op: String,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A named link does not exist.
    #[error("netlink: no link named {0:?}")]
    NoSuchLink(String),
    /// The kernel's answer lacked something the request needs (e.g. no route message).
    #[error("netlink {op}: unexpected answer: {detail}")]
    Unexpected {
        /// The operation, in iproute2 words.
        op: String,
        /// What was missing or malformed.
        detail: String,
    },
}

impl NetlinkError {
    /// Wraps an rtnetlink error with the operation it came from.
    pub(crate) fn request(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        NetlinkError::Request { op: op.into(), source }
    }

    /// The kernel's errno (positive, e.g. `libc::ENOENT`) when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source: rtnetlink::Error::NetlinkError(msg), .. } => msg.code.map(|c| c.get().abs()),
            _ => None,
        }
    }

    /// True when the kernel said the object does not exist (ENOENT, ESRCH, ENODEV).
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno(), Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::ENODEV))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::ErrorMessage;
    use std::num::NonZeroI32;

    fn kernel_error(code: i32) -> NetlinkError {
        let mut msg = ErrorMessage::default();
        msg.code = NonZeroI32::new(code);
        NetlinkError::request("route del 198.18.1.0/24", rtnetlink::Error::NetlinkError(msg))
    }

    #[test]
    fn errno_is_positive_and_names_operation() {
        let e = kernel_error(-libc::ESRCH);
        assert_eq!(e.errno(), Some(libc::ESRCH));
        assert!(e.is_not_found());
        assert!(e.to_string().starts_with("netlink route del 198.18.1.0/24: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn other_errors_are_not_not_found() {
        assert!(!kernel_error(-libc::EEXIST).is_not_found());
        assert_eq!(NetlinkError::NoSuchLink("x".into()).errno(), None);
    }
}
