//! A requested path → one relative to the workspace, lexically (the kernel checks it again).

use super::error::FileError;
use std::path::{Component, Path, PathBuf};

/// Turn a requested path into one relative to the workspace, lexically: `~` is the workspace
/// (it is HOME inside the sandbox), absolute paths must lie inside the workspace (compared by
/// components, so `/ws2` is not inside `/ws`), and `..` may not climb above the workspace. The
/// kernel then checks the result again, following symlinks, when it resolves it.
pub fn relative_path(workspace: &Path, requested: &str) -> Result<PathBuf, FileError> {
    if requested.contains('\0') {
        return Err(FileError::Nul);
    }
    let req = requested.trim();
    let p = if req == "~" {
        PathBuf::new()
    } else if let Some(rest) = req.strip_prefix("~/") {
        PathBuf::from(rest)
    } else if req.starts_with('/') {
        match Path::new(req).strip_prefix(workspace) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => {
                return Err(FileError::Outside(
                    crate::shown::shown(requested).into_owned(),
                ))
            }
        }
    } else {
        PathBuf::from(req)
    };
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(FileError::Outside(
                        crate::shown::shown(requested).into_owned(),
                    ));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(FileError::Outside(
                    crate::shown::shown(requested).into_owned(),
                ))
            }
        }
    }
    Ok(out)
}

/// The error for a file operation whose path names the workspace itself: an empty path says it is
/// empty (not ": is a directory"), `.` or `~` that it is a directory.
pub(super) fn not_a_file(shown: &str) -> FileError {
    if shown.trim().is_empty() {
        FileError::Empty
    } else {
        FileError::IsDir(shown.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside_lexically() {
        let ws = Path::new("/srv/ws");
        assert_eq!(relative_path(ws, "a/b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(relative_path(ws, "/srv/ws/a").unwrap(), PathBuf::from("a"));
        assert_eq!(relative_path(ws, "~/a").unwrap(), PathBuf::from("a"));
        assert_eq!(relative_path(ws, "~").unwrap(), PathBuf::new());
        assert_eq!(relative_path(ws, "a/../b").unwrap(), PathBuf::from("b"));
        assert_eq!(relative_path(ws, ".").unwrap(), PathBuf::new());
        for bad in [
            "/srv/ws2/a",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "/srv/ws/../x",
        ] {
            assert_eq!(
                relative_path(ws, bad),
                Err(FileError::Outside(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(relative_path(ws, "a\0b"), Err(FileError::Nul));
    }

    #[test]
    fn an_empty_path_is_called_empty_not_a_directory() {
        assert_eq!(not_a_file(""), FileError::Empty);
        assert_eq!(not_a_file("  "), FileError::Empty);
        assert_eq!(not_a_file("."), FileError::IsDir(".".into()));
        assert!(!FileError::Empty.to_string().starts_with(':'));
    }
}
