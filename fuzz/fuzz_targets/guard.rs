//! The guard never panics or hangs on any command line, and a blocked result always names a
//! pattern.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sandboxd::guard::Guard;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let g = Guard::new(true, &["git push --force|-f".into()], &["rm -rf ./target".into()])
        .expect("static patterns");
    if let Some(b) = g.check(s) {
        assert!(!b.pattern.is_empty());
    }
});
