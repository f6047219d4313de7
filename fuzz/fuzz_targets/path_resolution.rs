//! Any requested path either maps to a relative path with no `..`, root or prefix component (so
//! the kernel resolves it beneath the workspace), or is refused; it never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sandboxd::fileops::relative_path;
use std::path::{Component, Path};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rel) = relative_path(Path::new("/srv/ws"), s) {
        assert!(rel.is_relative(), "{s:?} -> {rel:?}");
        assert!(
            rel.components().all(|c| matches!(c, Component::Normal(_))),
            "{s:?} -> {rel:?}"
        );
    }
});
