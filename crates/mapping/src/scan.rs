//! Linear scans of template and JSONPath text that enforce the size and nesting limits
//! ([`crate::limits`]) before any parser sees the text.
//!
//! Handlebars' parser, its compiler and this crate's checks and renderers recurse once per level
//! of nesting, so a template nested a few thousand levels deep would overflow the stack; the
//! scans here are loops over the bytes and refuse such text first.
//!
//! The template scan follows the Handlebars grammar (handlebars-rust 6, `grammar.pest`) closely
//! enough that, for every template the parser accepts, the depth it measures is at least the
//! nesting of the parsed template: it tells raw text, escapes (`\{{`), comments, raw blocks and
//! string literals apart as the grammar does, and tells literal lists from `[path keys]` the
//! way the parser tries them (a literal first, where a parameter starts). For text the parser
//! rejects, the scan's answer does not matter: the parser fails without recursing further than
//! its own stack guard allows.

use crate::limits::{
    MAX_PATH_BYTES, MAX_PATH_DEPTH, MAX_PATH_DESCENDANTS, MAX_PATH_FANOUT, MAX_TEMPLATE_BYTES,
    MAX_TEMPLATE_DEPTH, MAX_TEMPLATE_PLACEHOLDERS, bytes,
};

/// Text that goes over a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanError {
    /// Where, in bytes from the start of the text.
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// Checks a template's size, number of placeholders and nesting depth.
#[cfg(test)]
pub(crate) fn template(src: &str) -> Result<(), ScanError> {
    scan_template(src, false).map(|_| ())
}

/// A word (a path, a helper name or a key) or a string literal inside a template's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    /// Where it starts, in bytes from the start of the template.
    pub start: usize,
    /// Where it ends (exclusive).
    pub end: usize,
    /// A string literal (with its quotes), else a word.
    pub string: bool,
}

/// [`template`], also returning the words and string literals inside the template's tags, in
/// order (comments, raw text and raw blocks have none). For a template the parser accepts,
/// every path of the parsed template is one of the words, as written.
pub(crate) fn template_tokens(src: &str) -> Result<Vec<Token>, ScanError> {
    scan_template(src, true).map(Option::unwrap_or_default)
}

fn scan_template(src: &str, tokens: bool) -> Result<Option<Vec<Token>>, ScanError> {
    if src.len() > MAX_TEMPLATE_BYTES {
        return Err(ScanError {
            offset: floor_char(src, MAX_TEMPLATE_BYTES),
            message: format!(
                "the template is {} bytes long; the limit is {}",
                src.len(),
                bytes(MAX_TEMPLATE_BYTES)
            ),
            hint: Some("split the text over several fields".into()),
        });
    }
    let mut s = Tpl {
        b: src.as_bytes(),
        blocks: Vec::new(),
        depth: 0,
        placeholders: 0,
        tokens: tokens.then(Vec::new),
    };
    s.run()?;
    Ok(s.tokens)
}

/// The largest char boundary at or before `i`.
fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn too_deep(offset: usize) -> ScanError {
    ScanError {
        offset,
        message: format!(
            "the template nests deeper than {MAX_TEMPLATE_DEPTH} levels (blocks, `else` chains, \
             subexpressions and literal lists count together)"
        ),
        hint: Some("flatten it: split it over several fields or fill a field from a path".into()),
    }
}

/// What scanning a construct found: the position after it, or `None` when the parser cannot
/// accept the text there (scanning stops: the parser reports the syntax error).
type Step = Result<Option<usize>, ScanError>;

struct Tpl<'a> {
    b: &'a [u8],
    /// Open blocks: the `else` chain links each one added.
    blocks: Vec<usize>,
    /// Blocks and chain links open at the current position.
    depth: usize,
    placeholders: usize,
    /// Words and string literals seen in tags, when asked for.
    tokens: Option<Vec<Token>>,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// `symbol_char` of the grammar: what may not follow a number, `null`, `true` or `false`.
fn is_symbol(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'$' | b':') || c >= 0x80
}

/// Ends a path or name inside an expression.
fn is_delim(c: u8) -> bool {
    is_ws(c)
        || matches!(
            c,
            b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b'\'' | b'~' | b'=' | b'|'
        )
}

impl Tpl<'_> {
    fn starts(&self, i: usize, pat: &[u8]) -> bool {
        self.b.get(i..).is_some_and(|r| r.starts_with(pat))
    }

    fn find(&self, from: usize, pat: &[u8]) -> Option<usize> {
        let rest = self.b.get(from..)?;
        rest.windows(pat.len())
            .position(|w| w == pat)
            .map(|p| from + p)
    }

    fn token(&mut self, start: usize, end: usize, string: bool) {
        if let Some(t) = &mut self.tokens {
            t.push(Token { start, end, string });
        }
    }

    fn skip_ws(&self, mut i: usize) -> usize {
        while i < self.b.len() && is_ws(self.b[i]) {
            i += 1;
        }
        i
    }

    fn placeholder(&mut self, at: usize) -> Result<(), ScanError> {
        self.placeholders += 1;
        if self.placeholders > MAX_TEMPLATE_PLACEHOLDERS {
            return Err(ScanError {
                offset: at,
                message: format!(
                    "the template has more than {MAX_TEMPLATE_PLACEHOLDERS} placeholders (`{{{{`)"
                ),
                hint: Some("split it over several fields".into()),
            });
        }
        Ok(())
    }

    fn open(&mut self, at: usize) -> Result<(), ScanError> {
        self.depth += 1;
        if self.depth > MAX_TEMPLATE_DEPTH {
            return Err(too_deep(at));
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), ScanError> {
        let mut i = 0;
        loop {
            // Raw text up to the next `{{` that is not escaped.
            let Some(rel) = self.b[i..].iter().position(|c| *c == b'{' || *c == b'\\') else {
                return Ok(());
            };
            let j = i + rel;
            if self.b[j] == b'\\' {
                match self.escape(j)? {
                    Some(next) => i = next,
                    None => i = j + 1,
                }
                continue;
            }
            if !self.starts(j, b"{{") {
                i = j + 1;
                continue;
            }
            match self.mustache(j)? {
                Some(next) => i = next,
                None => return Ok(()),
            }
        }
    }

    /// A run of backslashes at `j`: `\{{` (and `\{{{{`) is literal text; two or more
    /// backslashes before `{{` are literal and the `{{` is real. Returns where text goes on,
    /// `None` when the backslashes are plain text.
    fn escape(&mut self, j: usize) -> Result<Option<usize>, ScanError> {
        let mut k = j;
        while k < self.b.len() && self.b[k] == b'\\' {
            k += 1;
        }
        if !self.starts(k, b"{{") {
            return Ok(Some(k));
        }
        if k - j >= 2 {
            // The `{{` after the backslashes opens a real tag.
            return Ok(Some(k));
        }
        self.placeholder(j)?;
        let mut next = k + 2;
        if self.starts(next, b"{{") {
            next += 2;
        }
        Ok(Some(next))
    }

    /// The construct starting with `{{` at `j`.
    fn mustache(&mut self, j: usize) -> Step {
        self.placeholder(j)?;
        if self.starts(j, b"{{!--") {
            if let Some(q) = self.find(j + 5, b"--}}") {
                return Ok(Some(q + 4));
            }
        }
        if self.starts(j, b"{{!") {
            return Ok(self.find(j + 3, b"}}").map(|q| q + 2));
        }
        if self.starts(j, b"{{{{") {
            return self.raw_block(j);
        }
        let mut k = self.skip_ws(j + 2);
        if self.starts(k, b"~") {
            k = self.skip_ws(k + 1);
        }
        let Some(&c) = self.b.get(k) else {
            return Ok(None);
        };
        match c {
            b'{' | b'&' => self.expression(k + 1),
            b'#' => {
                let k = self.skip_ws(k + 1);
                if matches!(self.b.get(k), Some(b'>' | b'*')) {
                    return Err(unsupported(j));
                }
                self.blocks.push(0);
                self.open(j)?;
                self.expression(k)
            }
            b'/' => {
                if let Some(links) = self.blocks.pop() {
                    self.depth = self.depth.saturating_sub(1 + links);
                }
                self.expression(k + 1)
            }
            b'>' | b'*' => Err(unsupported(j)),
            b'^' => self.invert(j, k + 1),
            b'e' if self.starts(k, b"else") => self.invert(j, k + 4),
            _ => self.expression(k),
        }
    }

    /// `{{else}}` / `{{^}}` (no nesting) or `{{else if ...}}` / `{{^x}}` (one more link of the
    /// block's `else` chain).
    fn invert(&mut self, j: usize, k: usize) -> Step {
        let mut p = self.skip_ws(k);
        if self.starts(p, b"~") {
            p = self.skip_ws(p + 1);
        }
        let plain = self.starts(p, b"}}");
        if !plain {
            if let Some(links) = self.blocks.last_mut() {
                *links += 1;
                self.open(j)?;
            }
        }
        self.expression(k)
    }

    /// `{{{{name ...}}}} raw text {{{{/name}}}}`.
    fn raw_block(&mut self, j: usize) -> Step {
        let mut k = self.skip_ws(j + 4);
        if self.starts(k, b"~") {
            k += 1;
        }
        self.open(j)?;
        let Some(mut i) = self.expression(k)? else {
            return Ok(None);
        };
        // Raw text up to the first `{{{{` that is not escaped.
        loop {
            let Some(rel) = self.b[i..].iter().position(|c| *c == b'{' || *c == b'\\') else {
                return Ok(None);
            };
            let p = i + rel;
            if self.b[p] == b'\\' {
                i = self.escape(p)?.unwrap_or(p + 1);
                continue;
            }
            if !self.starts(p, b"{{{{") {
                i = p + 1;
                continue;
            }
            self.placeholder(p)?;
            self.depth -= 1;
            return self.expression(p + 4);
        }
    }

    /// The inside of a tag from `i` (after `{{`, `~` and the tag's sigil) to its closing
    /// braces; returns the position after them.
    fn expression(&mut self, mut i: usize) -> Step {
        let b = self.b;
        let mut parens = 0usize;
        // At the start of a name (the first word, or the first after `(`): a `[` there is a
        // path key; where a parameter starts, a literal list is tried first.
        let mut name = true;
        loop {
            i = self.skip_ws(i);
            let Some(&c) = b.get(i) else {
                return Ok(None);
            };
            match c {
                b'}' | b'~' => {
                    if parens > 0 {
                        return Ok(None);
                    }
                    break;
                }
                b')' => {
                    if parens == 0 {
                        return Ok(None);
                    }
                    parens -= 1;
                    i += 1;
                    name = false;
                }
                b'(' => {
                    parens += 1;
                    if self.depth + parens > MAX_TEMPLATE_DEPTH {
                        return Err(too_deep(i));
                    }
                    i += 1;
                    name = true;
                }
                b'"' | b'\'' => match self.string(i) {
                    Some(end) => {
                        self.token(i, end, true);
                        i = end;
                        name = false;
                    }
                    None => return Ok(None),
                },
                b'[' => {
                    let literal = if name {
                        None
                    } else {
                        self.literal(i, self.depth + parens)?
                    };
                    i = match literal {
                        Some(end) => end,
                        None => match self.path_key(i) {
                            Some(end) => {
                                let end = self.word(end);
                                self.token(i, end, false);
                                end
                            }
                            None => return Ok(None),
                        },
                    };
                    name = false;
                }
                b'{' => {
                    if name {
                        return Ok(None);
                    }
                    match self.literal(i, self.depth + parens)? {
                        Some(end) => i = end,
                        None => return Ok(None),
                    }
                }
                b'=' | b'|' => {
                    i += 1;
                    name = false;
                }
                _ => {
                    let end = self.word(i);
                    if end == i {
                        // A stray `]`: nothing in the grammar takes it.
                        return Ok(None);
                    }
                    self.token(i, end, false);
                    i = end;
                    name = false;
                }
            }
        }
        // The closing `}}` (or `}}}`, `}}}}`, with `~` and spaces).
        let start = i;
        let mut braces = 0;
        while i < b.len() && (b[i] == b'}' || b[i] == b'~' || is_ws(b[i])) {
            braces += usize::from(b[i] == b'}');
            i += 1;
        }
        if braces == 0 || i == start {
            return Ok(None);
        }
        Ok(Some(i))
    }

    /// A path or name from `i`; `[...]` after `.`, `/` or `@` is a key inside it.
    fn word(&self, mut i: usize) -> usize {
        let b = self.b;
        while i < b.len() {
            let c = b[i];
            if c == b'[' && i > 0 && matches!(b[i - 1], b'.' | b'/' | b'@') {
                match self.path_key(i) {
                    Some(end) => {
                        i = end;
                        continue;
                    }
                    None => return b.len(),
                }
            }
            if is_delim(c) {
                break;
            }
            i += 1;
        }
        i
    }

    /// `[...]` as a path key: everything up to the first `]`.
    fn path_key(&self, i: usize) -> Option<usize> {
        self.b[i + 1..]
            .iter()
            .position(|c| *c == b']')
            .map(|p| i + 1 + p + 1)
    }

    /// A string literal at `i` (`"` or `'`), with the grammar's JSON escapes; its end.
    fn string(&self, i: usize) -> Option<usize> {
        let b = self.b;
        let q = b[i];
        let mut k = i + 1;
        loop {
            let c = *b.get(k)?;
            if c == q {
                return Some(k + 1);
            }
            if c == b'\\' {
                let e = *b.get(k + 1)?;
                if e == q || matches!(e, b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') {
                    k += 2;
                } else if e == b'u'
                    && b.get(k + 2..k + 6)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                {
                    k += 6;
                } else {
                    return None;
                }
            } else {
                k += 1;
            }
        }
    }

    /// A literal (string, number, `null`, `true`, `false`, list or object) at `i`, with lists
    /// and objects nested inside `base` levels: its end, or `None` when there is none.
    fn literal(&self, i: usize, base: usize) -> Result<Option<usize>, ScanError> {
        let b = self.b;
        let Some(&c) = b.get(i) else {
            return Ok(None);
        };
        match c {
            b'"' | b'\'' => Ok(self.string(i)),
            b'[' | b'{' => {
                if base + 1 > MAX_TEMPLATE_DEPTH {
                    return Err(too_deep(i));
                }
                let close = if c == b'[' { b']' } else { b'}' };
                // `[` literal? (`,` literal)* `]`, `{` member? (`,` member)* `}`: the first
                // item may be left out (`[,1]` parses), the others may not.
                let mut k = self.skip_ws(i + 1);
                if let Some(end) = self.item(k, c, base)? {
                    k = self.skip_ws(end);
                }
                loop {
                    match b.get(k) {
                        Some(&e) if e == close => return Ok(Some(k + 1)),
                        Some(b',') => match self.item(self.skip_ws(k + 1), c, base)? {
                            Some(end) => k = self.skip_ws(end),
                            None => return Ok(None),
                        },
                        _ => return Ok(None),
                    }
                }
            }
            b'n' | b't' | b'f' => {
                let word: &[u8] = match c {
                    b'n' => b"null",
                    b't' => b"true",
                    _ => b"false",
                };
                if self.starts(i, word) && !b.get(i + word.len()).copied().is_some_and(is_symbol) {
                    Ok(Some(i + word.len()))
                } else {
                    Ok(None)
                }
            }
            b'-' | b'0'..=b'9' => Ok(self.number(i)),
            _ => Ok(None),
        }
    }

    /// One item of a list (a literal) or of an object (`"key": literal`) at `k`.
    fn item(&self, k: usize, open: u8, base: usize) -> Result<Option<usize>, ScanError> {
        if open == b'[' {
            return self.literal(k, base + 1);
        }
        if !matches!(self.b.get(k), Some(b'"' | b'\'')) {
            return Ok(None);
        }
        let Some(end) = self.string(k) else {
            return Ok(None);
        };
        let k = self.skip_ws(end);
        if self.b.get(k) != Some(&b':') {
            return Ok(None);
        }
        self.literal(self.skip_ws(k + 1), base + 1)
    }

    /// `-? DIGIT+ .? DIGIT* (E -? DIGIT+)?` not followed by a symbol character.
    fn number(&self, mut i: usize) -> Option<usize> {
        let b = self.b;
        let digits = |mut k: usize| {
            while b.get(k).is_some_and(u8::is_ascii_digit) {
                k += 1;
            }
            k
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        let k = digits(i);
        if k == i {
            return None;
        }
        i = k;
        if b.get(i) == Some(&b'.') {
            i += 1;
        }
        i = digits(i);
        if b.get(i) == Some(&b'E') {
            let mut e = i + 1;
            if b.get(e) == Some(&b'-') {
                e += 1;
            }
            let end = digits(e);
            if end > e {
                i = end;
            }
        }
        if b.get(i).copied().is_some_and(is_symbol) {
            return None;
        }
        Some(i)
    }
}

fn unsupported(at: usize) -> ScanError {
    ScanError {
        offset: at,
        message: "partials and decorators are not supported in mappings".into(),
        hint: None,
    }
}

/// Checks a JSONPath's size, nesting depth, descendant segments and union fan-out.
pub(crate) fn path(src: &str) -> Result<(), ScanError> {
    if src.len() > MAX_PATH_BYTES {
        return Err(ScanError {
            offset: floor_char(src, MAX_PATH_BYTES),
            message: format!(
                "the path is {} bytes long; the limit is {}",
                src.len(),
                bytes(MAX_PATH_BYTES)
            ),
            hint: None,
        });
    }
    let b = src.as_bytes();
    // Open `[` and `(`, with the selectors counted so far in each `[`.
    let mut open: Vec<(u8, usize)> = Vec::new();
    let mut fanout: usize = 1;
    let mut descendants = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' => {
                // A string: the parser cannot get past one that does not end.
                let mut k = i + 1;
                loop {
                    match b.get(k) {
                        None => return Ok(()),
                        Some(&q) if q == c => break,
                        Some(b'\\') => k += 2,
                        Some(_) => k += 1,
                    }
                }
                i = k + 1;
                continue;
            }
            b'[' | b'(' => {
                open.push((c, 1));
                if open.len() > MAX_PATH_DEPTH {
                    return Err(ScanError {
                        offset: i,
                        message: format!(
                            "the path nests deeper than {MAX_PATH_DEPTH} levels of [ ] and ( )"
                        ),
                        hint: None,
                    });
                }
            }
            b']' | b')' => {
                if let Some((b'[', selectors)) = open.pop() {
                    fanout = fanout.saturating_mul(selectors);
                    if fanout > MAX_PATH_FANOUT {
                        return Err(ScanError {
                            offset: i,
                            message: format!(
                                "the path's unions select more than {MAX_PATH_FANOUT} times per \
                                 value (the selector counts of its [ ] multiply)"
                            ),
                            hint: Some("use a filter, e.g. [?@.a == 1 || @.a == 2]".into()),
                        });
                    }
                }
            }
            b',' => {
                if let Some((b'[', n)) = open.last_mut() {
                    *n += 1;
                }
            }
            b'.' if b.get(i + 1) == Some(&b'.') => {
                descendants += 1;
                if descendants > MAX_PATH_DESCENDANTS {
                    return Err(ScanError {
                        offset: i,
                        message: format!(
                            "the path has more than {MAX_PATH_DESCENDANTS} descendant segment \
                             (`..`)"
                        ),
                        hint: Some(
                            "name the levels after the first `..` (e.g. $..items[*].sku)".into(),
                        ),
                    });
                }
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_err(src: &str) -> bool {
        matches!(template(src), Err(e) if e.message.contains("nests deeper"))
    }

    #[test]
    fn nesting_is_measured() {
        let nested = |n: usize| {
            format!(
                "{{{{{}record.a{}}}}}",
                "lowercase (".repeat(n),
                ")".repeat(n)
            )
        };
        assert_eq!(template(&nested(MAX_TEMPLATE_DEPTH)), Ok(()));
        assert!(depth_err(&nested(MAX_TEMPLATE_DEPTH + 1)));
        let blocks = |n: usize| format!("{}x{}", "{{#if record.a}}".repeat(n), "{{/if}}".repeat(n));
        assert_eq!(template(&blocks(MAX_TEMPLATE_DEPTH)), Ok(()));
        assert!(depth_err(&blocks(MAX_TEMPLATE_DEPTH + 1)));
        // Closed blocks do not add up.
        assert_eq!(template(&"{{#if a}}x{{/if}}".repeat(100)), Ok(()));
        // `else if` chains nest; plain `else` does not.
        let chain = |n: usize| format!("{{{{#if a}}}}{}{{{{/if}}}}", "{{else if b}}".repeat(n));
        assert_eq!(template(&chain(MAX_TEMPLATE_DEPTH - 1)), Ok(()));
        assert!(depth_err(&chain(MAX_TEMPLATE_DEPTH)));
        assert_eq!(template(&"{{#if a}}x{{else}}y{{/if}}".repeat(80)), Ok(()));
        // Blocks and subexpressions count together.
        let mixed = format!(
            "{}{}{}",
            "{{#if a}}".repeat(40),
            nested(30),
            "{{/if}}".repeat(40)
        );
        assert!(depth_err(&mixed));
        // Literal lists nest too.
        let lists = |n: usize| format!("{{{{lookup {}1{} 0}}}}", "[".repeat(n), "]".repeat(n));
        assert_eq!(template(&lists(MAX_TEMPLATE_DEPTH)), Ok(()));
        assert!(depth_err(&lists(MAX_TEMPLATE_DEPTH + 1)));
    }

    #[test]
    fn text_strings_and_keys_are_not_nesting() {
        let parens = "(".repeat(500);
        for src in [
            format!("{parens} {{{{record.a}}}} {parens}"),
            format!("{{{{concat \"{parens}\" record.a}}}}"),
            format!("{{{{concat '{parens}' record.a}}}}"),
            format!("{{{{record.[{parens}]}}}}"),
            format!("{{{{lookup record [{parens}]}}}}"),
            format!("{{{{!-- {{{{#if}}}} {parens} --}}}}"),
            format!("{{{{! {parens} }}}}"),
            format!("\\{{{{lowercase {parens}}}}}"),
            format!("{{{{{{{{raw}}}}}}}} {{{{#if}}}} {parens} {{{{{{{{/raw}}}}}}}}"),
        ] {
            assert_eq!(template(&src), Ok(()), "{src}");
        }
    }

    #[test]
    fn quotes_in_keys_cannot_hide_nesting() {
        let deep = format!("{}record.a{}", "(lowercase ".repeat(70), ")".repeat(70));
        for src in [
            format!("{{{{lookup record.[a\"b] {deep}}}}}"),
            format!("{{{{lookup [a\"b] {deep}}}}}"),
            format!("{{{{[a\"b]}}}}\"{{{{lowercase {deep}}}}}"),
            format!("{{{{lookup [\"]\"] {deep}}}}}"),
            format!("\\\\{{{{lowercase {deep}}}}}"),
            format!("{{{{!-- x }}}} {{{{lowercase {deep}}}}}"),
        ] {
            assert!(depth_err(&src), "{src}");
        }
    }

    #[test]
    fn every_byte_is_passed() {
        // Found by the property tests: a stray `]` in a tag stopped the scan from advancing.
        for src in ["{{a ]}}", "{{]}}", "{{#if ] (((}}", "{{x ]"] {
            assert_eq!(template(src), Ok(()), "{src}");
        }
    }

    #[test]
    fn sizes_are_limited() {
        let e = template(&"x".repeat(MAX_TEMPLATE_BYTES + 1)).unwrap_err();
        assert_eq!(e.offset, MAX_TEMPLATE_BYTES);
        assert!(e.message.contains("16 KiB"), "{e:?}");
        let ok = "{{a}}".repeat(MAX_TEMPLATE_PLACEHOLDERS);
        assert_eq!(template(&ok), Ok(()));
        let e = template(&format!("{ok}{{{{a}}}}")).unwrap_err();
        assert_eq!(e.offset, ok.len());
        assert!(e.message.contains("placeholders"), "{e:?}");
    }

    #[test]
    fn partials_are_refused_where_they_are() {
        for (src, at) in [
            ("ab {{> header}}", 3),
            ("{{#> layout}}x{{/layout}}", 0),
            ("x{{* deco}}", 1),
            ("{{ #*inline \"p\"}}{{/inline}}", 0),
        ] {
            let e = template(src).unwrap_err();
            assert!(e.message.contains("partials"), "{src}");
            assert_eq!(e.offset, at, "{src}");
        }
    }

    #[test]
    fn literal_lexing() {
        let t = Tpl {
            b: br#"[1, -2.5E-3, "a\"]", 'b', null, true, [], {"k": [false]}] x"#,
            blocks: vec![],
            depth: 0,
            placeholders: 0,
            tokens: None,
        };
        assert_eq!(t.literal(0, 0), Ok(Some(t.b.len() - 2)));
        for bad in [
            "[1 2]",
            "[nul]",
            "[1a]",
            "[\"\\x\"]",
            "{1: 2}",
            "[1,]",
            "[,]",
        ] {
            let t = Tpl {
                b: bad.as_bytes(),
                blocks: vec![],
                depth: 0,
                placeholders: 0,
                tokens: None,
            };
            assert_eq!(t.literal(0, 0), Ok(None), "{bad}");
        }
        for good in ["[,1]", "{,\"a\": 1}", "[ ]", "{ }", "-0.E5"] {
            let t = Tpl {
                b: good.as_bytes(),
                blocks: vec![],
                depth: 0,
                placeholders: 0,
                tokens: None,
            };
            assert_eq!(t.literal(0, 0), Ok(Some(good.len())), "{good}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(path("$.a[?@.b == 'x(((['][0,1]..c"), Ok(()));
        let deep = format!("$[?{}@.a{}]", "(".repeat(40), ")".repeat(40));
        assert!(path(&deep).unwrap_err().message.contains("nests deeper"));
        assert!(path("$..a..b").unwrap_err().message.contains("descendant"));
        assert_eq!(
            path("$[0,1,2,3,4,5,6,7]['a','b','c','d','e','f','g','h']"),
            Ok(())
        );
        assert!(
            path("$[0,1,2,3,4,5,6,7]['a','b','c','d','e','f','g','h'][0,1]")
                .unwrap_err()
                .message
                .contains("unions")
        );
        assert!(path(&format!("$.{}", "a".repeat(MAX_PATH_BYTES))).is_err());
    }
}
