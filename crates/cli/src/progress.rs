//! Progress on a terminal, plain lines elsewhere: a bar when stderr is a terminal, nothing
//! (the summary says it all) when it is a file or a pipe.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A bar of `len` steps labelled `what`, hidden unless stderr is a terminal.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}
