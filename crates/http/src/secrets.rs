//! Secrets, scrubbed by value. Every secret Rivulet reads — a token from the environment or a
//! file, an OAuth client secret, a refresh token, the access tokens it is given, a header value
//! that came from `${…}` — is registered here once, and [`scrub`] replaces it (and its
//! URL-encoded and base64 forms, in which servers like to echo it) in any text before that
//! text is logged, printed or stored. Scrubbing by value catches a secret wherever it ends up:
//! in an error body a server echoed, in a failed record, in a log line.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Values shorter than this are not scrubbed: replacing every `abc` in every log line would
/// hide more than it protects, and no credential is that short.
const MIN_LEN: usize = 8;

fn registry() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Registers a secret value (and the forms it may be echoed in). Short values are ignored.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_LEN {
        return;
    }
    // Base64 without padding: a padded echo contains it.
    let mut forms = vec![
        secret.to_string(),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>(),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
    ];
    // Longest first, so a form is never partly replaced by a shorter one it contains.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    let mut known = registry().write().unwrap_or_else(|p| p.into_inner());
    for form in forms {
        if form.len() >= MIN_LEN && !known.contains(&form) {
            known.push(form);
        }
    }
    known.sort_by_key(|f| std::cmp::Reverse(f.len()));
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let known = registry().read().unwrap_or_else(|p| p.into_inner());
    if !known.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    Cow::Owned(out)
}

/// [`scrub`] for an owned string, without copying when there is nothing to scrub.
pub fn scrub_owned(text: String) -> String {
    match scrub(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_in_every_form() {
        register("s3cr3t+/=&value");
        let echoed = [
            "token s3cr3t+/=&value refused",
            "form client_secret=s3cr3t%2B%2F%3D%26value&x=1",
            "basic czNjcjN0Ky89JnZhbHVl",
            "url czNjcjN0Ky89JnZhbHVl",
        ];
        for text in echoed {
            let clean = scrub(text);
            assert!(clean.contains(REDACTED), "{text} → {clean}");
            assert!(!clean.contains("s3cr3t"), "{clean}");
        }
        assert!(matches!(scrub("nothing to see"), Cow::Borrowed(_)));
        register("abc");
        assert_eq!(scrub("abc def"), "abc def", "short values are not scrubbed");
    }
}
