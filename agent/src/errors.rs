//! Errors as one sentence: an error chain rendered without the causes that only repeat what an
//! outer message already says (tonic's `transport error: No such file or directory (os error 2):
//! No such file or directory (os error 2)`), and an I/O cause in plain words.

use std::error::Error;

/// The messages of an error and its sources, joined with `: `, leaving out each one the text so
/// far already contains (a library that prints its source in its own message, or wraps the same
/// error twice). `os error N` suffixes are dropped: the words say it.
pub fn render_chain(messages: impl IntoIterator<Item = String>) -> String {
    let mut out = String::new();
    for m in messages {
        let m = without_os_error(&m);
        if m.is_empty() || out.contains(&m) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&m);
    }
    out
}

/// [`render_chain`] over an error and its sources.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    render_chain(sources(e).map(|e| e.to_string()))
}

/// [`render_chain`] over an `anyhow` error's context and causes.
pub fn anyhow_chain(e: &anyhow::Error) -> String {
    render_chain(e.chain().map(|e| e.to_string()))
}

fn sources<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(e), |e: &&'a (dyn Error + 'static)| {
        let e: &'a (dyn Error + 'static) = *e;
        e.source()
    })
}

/// The innermost I/O error in a chain, if any.
pub fn io_cause<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a std::io::Error> {
    sources(e)
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .last()
}

/// An I/O error in lower-case words without the `(os error N)`: "connection refused".
pub fn plain_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        NotFound => "no such file or directory".into(),
        PermissionDenied => "permission denied".into(),
        ConnectionReset => "connection reset".into(),
        TimedOut => "timed out".into(),
        _ => {
            let s = without_os_error(&e.to_string());
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => s,
            }
        }
    }
}

fn without_os_error(m: &str) -> String {
    let m = m.trim();
    match m.rfind(" (os error ") {
        Some(i) if m.ends_with(')') => m[..i].to_string(),
        _ => m.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("transport error")]
    struct Transport(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Echo(#[source] std::io::Error);

    #[test]
    fn repeated_causes_are_said_once() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = Transport(std::io::Error::other(Echo(io)));
        let s = chain(&e);
        assert_eq!(s, "transport error: No such file or directory");
        let e = anyhow::Error::new(Transport(std::io::Error::from_raw_os_error(
            libc::ECONNREFUSED,
        )))
        .context("connecting to sandboxd at /x.sock");
        assert_eq!(
            anyhow_chain(&e),
            "connecting to sandboxd at /x.sock: transport error: Connection refused"
        );
    }

    #[test]
    fn io_errors_in_plain_words() {
        for (errno, words) in [
            (libc::ECONNREFUSED, "connection refused"),
            (libc::ENOENT, "no such file or directory"),
            (libc::EACCES, "permission denied"),
            (libc::ENOTDIR, "not a directory"),
        ] {
            assert_eq!(plain_io(&std::io::Error::from_raw_os_error(errno)), words);
        }
        let nested = Echo(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!(
            io_cause(&nested).map(plain_io).as_deref(),
            Some("connection refused")
        );
    }
}
