//! Every limit of the mapping engine, in one place.
//!
//! Bad input — a hostile template, path or record — never panics, hangs or exhausts memory:
//! templates and paths are measured by a linear scan of their text *before* any parser (which
//! may recurse) sees them, and rendering is bounded by the size of what it produces and by the
//! work it does. Going over a limit is a [`CompileError`](crate::CompileError) at load time or a
//! [`FieldError`](crate::FieldError) for that record, never a crash.

/// Longest template, in bytes (16 KiB).
///
/// Handlebars computes each element's line and column by counting from the start of the
/// template, so compiling costs about *placeholders × length*: the two limits together keep
/// the worst case near 0.1 s in a debug build (a few ms in release).
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

/// Most `{{` in one template (placeholders, blocks, comments and escaped `\{{` alike).
pub const MAX_TEMPLATE_PLACEHOLDERS: usize = 256;

/// Deepest nesting in a template: blocks (`{{#if}}`, `{{#each}}`, ...), `{{else if}}` chains,
/// subexpressions `( )` and literal lists `[ ]` and objects `{ }` together.
pub const MAX_TEMPLATE_DEPTH: usize = 64;

/// Longest JSONPath, in bytes (a `path:` field, or the path given to `jsonpath`).
pub const MAX_PATH_BYTES: usize = 4 * 1024;

/// Deepest nesting of `[ ]` and `( )` in a JSONPath (filters, function calls).
pub const MAX_PATH_DEPTH: usize = 32;

/// Most descendant segments (`..`) in a JSONPath: each one multiplies the work of those after it
/// by the depth of the record.
pub const MAX_PATH_DESCENDANTS: usize = 1;

/// Largest product of the selector counts of a JSONPath's bracketed selections (`[0,1,2]` is
/// 3, `['a','b']['c','d']` is 4): each union multiplies the matches (duplicates included).
pub const MAX_PATH_FANOUT: usize = 64;

/// Largest value of one field, in bytes (1 MiB): a rendered template, a value read by a path
/// (a list counts its items' text), and any intermediate helper result (where a list counts
/// [`LIST_ITEM_BYTES`] per item besides its text).
pub const MAX_FIELD_BYTES: usize = 1024 * 1024;

/// Largest total of one record's mapped values, in bytes (4 MiB).
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// What one item of a list counts towards [`MAX_FIELD_BYTES`] besides its text: roughly the
/// memory a JSON value takes.
pub const LIST_ITEM_BYTES: usize = 32;

/// Most bytes the helpers of one field may handle, input read plus output written, while
/// rendering one record (16 MiB): bounds the work of templates that apply helpers to large
/// values many times (`{{#each}}` around `replace`, ...).
pub const MAX_FIELD_WORK_BYTES: usize = 16 * 1024 * 1024;

/// Most `{{#each}}` iterations while rendering one field of one record.
pub const MAX_FIELD_ITERATIONS: u64 = 100_000;

/// Longest time Handlebars may take to render one field of one record. A last resort: the
/// limits above bound the work of every loop and helper, but not of Handlebars' built-in
/// helpers (`eq` on two large values, ...) repeated by a loop.
pub const MAX_RENDER_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Most errors reported for one template or path (the rest are counted in a last error).
pub const MAX_ERRORS_PER_FIELD: usize = 10;

/// Longest error message, in bytes; longer ones are cut (values are quoted shortened anyway).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Longest source (template or path) quoted in a [`FieldError`](crate::FieldError), in bytes.
pub const MAX_SOURCE_BYTES: usize = 200;

/// Longest word for which a "did you mean" hint is computed (similarity is quadratic).
pub const MAX_HINT_CHARS: usize = 64;

/// `n` bytes for a message: `1 MiB`, `16 KiB`, `200 bytes`.
pub(crate) fn bytes(n: usize) -> String {
    if n >= 1024 * 1024 && n % (1024 * 1024) == 0 {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n % 1024 == 0 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// `s` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub(crate) fn cut(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &s[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_read_well() {
        assert_eq!(bytes(MAX_FIELD_BYTES), "1 MiB");
        assert_eq!(bytes(MAX_TEMPLATE_BYTES), "16 KiB");
        assert_eq!(bytes(100), "100 bytes");
    }

    #[test]
    fn cutting_respects_characters() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("ééé", 3), "é…");
    }
}
