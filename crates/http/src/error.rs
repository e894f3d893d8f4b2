//! Typed failures of a send. None carries a URL's query or a header value in its `Display` or
//! `Debug` output: callers log them as they are.

use std::fmt;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::retry::TransportKind;

/// Why a hook stopped a request: the caller's own error, boxed (downcast it to get it back).
pub type StopReason = Box<dyn std::error::Error + Send + Sync>;

/// Everything [`crate::Policy::send`] can fail with, after any retries.
#[derive(thiserror::Error)]
pub enum Error {
    /// No usable answer: the connection failed, timed out, or broke while the body was read.
    #[error("{kind}{after}: {message}", after = after(*attempts))]
    Transport {
        /// What went wrong, coarsely.
        kind: TransportKind,
        /// Whether the server may have received the request (false only for a connect error).
        maybe_sent: bool,
        /// Sends made.
        attempts: u32,
        /// The transport's own description, without the URL.
        message: String,
    },
    /// The server answered with a status that is not a success (after any retries). The body is
    /// kept, so the caller can read its own error format.
    #[error("HTTP {status}{after}", after = after(*attempts))]
    Status {
        /// The status.
        status: StatusCode,
        /// The answer's headers.
        headers: HeaderMap,
        /// The answer's body.
        body: Vec<u8>,
        /// Sends made.
        attempts: u32,
    },
    /// The answer's body passed the configured size cap; it was not read further.
    #[error("HTTP {status} answer larger than the {limit}-byte cap")]
    TooLarge {
        /// The answer's status.
        status: StatusCode,
        /// The cap, in bytes.
        limit: u64,
        /// Sends made.
        attempts: u32,
    },
    /// The server still answered 429 after as many waits and sends as the policy allows.
    #[error("still rate limited (HTTP 429) after {attempts} attempts")]
    RateLimited {
        /// Sends made.
        attempts: u32,
        /// The last 429's headers.
        headers: HeaderMap,
        /// The last 429's body.
        body: Vec<u8>,
    },
    /// A hook stopped the request (e.g. a daily limit, or credentials that cannot be had).
    #[error("{reason}")]
    Stopped {
        /// The hook's error.
        reason: StopReason,
        /// Sends made before it stopped.
        attempts: u32,
    },
    /// The policy's settings are unusable.
    #[error("invalid HTTP settings: {0}")]
    Config(String),
}

fn after(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl Error {
    /// Sends made before the error was returned.
    pub fn attempts(&self) -> u32 {
        match self {
            Error::Transport { attempts, .. }
            | Error::Status { attempts, .. }
            | Error::TooLarge { attempts, .. }
            | Error::RateLimited { attempts, .. }
            | Error::Stopped { attempts, .. } => *attempts,
            Error::Config(_) => 0,
        }
    }

    /// The status of the last answer, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } | Error::TooLarge { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
            _ => None,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport {
                kind,
                maybe_sent,
                attempts,
                message,
            } => f
                .debug_struct("Transport")
                .field("kind", kind)
                .field("maybe_sent", maybe_sent)
                .field("attempts", attempts)
                .field("message", message)
                .finish(),
            Error::Status {
                status,
                headers,
                body,
                attempts,
            } => f
                .debug_struct("Status")
                .field("status", status)
                .field("headers", &HeaderNames(headers))
                .field("body_bytes", &body.len())
                .field("attempts", attempts)
                .finish(),
            Error::TooLarge {
                status,
                limit,
                attempts,
            } => f
                .debug_struct("TooLarge")
                .field("status", status)
                .field("limit", limit)
                .field("attempts", attempts)
                .finish(),
            Error::RateLimited {
                attempts,
                headers,
                body,
            } => f
                .debug_struct("RateLimited")
                .field("attempts", attempts)
                .field("headers", &HeaderNames(headers))
                .field("body_bytes", &body.len())
                .finish(),
            Error::Stopped { reason, attempts } => f
                .debug_struct("Stopped")
                .field("reason", reason)
                .field("attempts", attempts)
                .finish(),
            Error::Config(m) => f.debug_tuple("Config").field(m).finish(),
        }
    }
}

/// Shows a header map's names only: values may be credentials or cookies.
pub(crate) struct HeaderNames<'a>(pub &'a HeaderMap);

impl fmt::Debug for HeaderNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// A transport failure in words: its kind, `reqwest`'s message without the URL, and the chain
/// of causes, at most 300 bytes.
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if msg.len() > 300 {
        let mut cut = 300;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    msg
}
