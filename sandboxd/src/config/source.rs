//! A file the configuration came from, kept to point a problem at the line its key is written on.

use std::path::PathBuf;

/// Where problems of the built-in configuration are located (there is no file to name).
pub(super) const BUILT_IN: &str = "(built-in: packaging/sandboxd.toml)";

/// A file the config came from, kept to point problems at their line.
pub(super) struct Source {
    pub(super) path: PathBuf,
    pub(super) text: String,
    /// For a profiles.d file: the profile it defines (its keys are then top-level).
    pub(super) profile: Option<String>,
}

impl Source {
    /// Line of `key` inside `[table]` (dotted, relative to this file), if written there.
    pub(super) fn line_of(&self, table: &str, key: &str) -> Option<usize> {
        let mut current = String::new();
        for (i, raw) in self.text.lines().enumerate() {
            let l = raw.trim();
            if let Some(h) = l.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                current = h.trim().trim_matches('[').trim_matches(']').to_string();
                if key.is_empty() && current == table {
                    return Some(i + 1);
                }
                continue;
            }
            if current == table && !key.is_empty() && assigns(l, key) {
                return Some(i + 1);
            }
        }
        None
    }

    /// Line of `key` inside the `n`-th (0-based) `[[table]]` block; the block's header line when
    /// the key is not written there.
    pub(super) fn line_in_array(&self, table: &str, n: usize, key: &str) -> Option<usize> {
        let mut seen = 0usize;
        let mut header = None;
        for (i, raw) in self.text.lines().enumerate() {
            let l = raw.trim();
            if l.starts_with('[') {
                let inside = l
                    .strip_prefix("[[")
                    .and_then(|h| h.split("]]").next())
                    .map(str::trim);
                if header.is_some() {
                    // The block ended without the key.
                    return header;
                }
                if inside == Some(table) {
                    if seen == n {
                        header = Some(i + 1);
                    }
                    seen += 1;
                }
                continue;
            }
            if header.is_some() && assigns(l, key) {
                return Some(i + 1);
            }
        }
        header
    }
}

/// Whether the (trimmed) line assigns `key`.
fn assigns(l: &str, key: &str) -> bool {
    l.strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}
