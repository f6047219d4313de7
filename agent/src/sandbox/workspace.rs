//! The workspace and directories inside it: which workspace a command uses (`-w`, the config, or
//! ~/.nanobot/workspace created on first use) and a working directory as sandboxd's `cwd`,
//! relative to the workspace. sandboxd resolves both again beneath its roots; that is the check
//! that counts.

use crate::user::{home, is_root};
use anyhow::{Context, Result};
use std::path::{Component, Path, PathBuf};

/// Root's workspace: root's home is 0700, which the sandbox user cannot traverse.
pub const ROOT_WORKSPACE: &str = "/var/lib/nanobot/workspace";

/// The workspace: `-w`, then the config's, then ~/.nanobot/workspace (created on first use).
pub fn choose(flag: Option<&Path>, configured: Option<PathBuf>) -> Result<PathBuf> {
    match (flag, configured) {
        (Some(w), _) => resolve_workspace(Some(w)),
        (None, Some(w)) => {
            // Create it when missing; a workspace this user cannot even see (sandboxd's own,
            // under /var/lib/nanobot) is passed on for sandboxd to resolve.
            if let Err(e) = std::fs::symlink_metadata(&w) {
                if e.kind() == std::io::ErrorKind::NotFound {
                    std::fs::create_dir_all(&w)
                        .with_context(|| format!("creating workspace {}", w.display()))?;
                }
            }
            resolve_workspace(Some(&w))
        }
        (None, None) => resolve_workspace(None),
    }
}

/// ~/.nanobot/workspace, for root too.
fn default_workspace() -> PathBuf {
    home().join(".nanobot/workspace")
}

/// Create the default workspace on first use. Root's home is 0700, which the unprivileged sandbox
/// user cannot traverse, so for root ~/.nanobot/workspace is made a symlink to
/// /var/lib/nanobot/workspace (owned by the sandbox user when the daemon starts); the resolved
/// path is what the daemon sees. A real directory there is left alone: sandboxd will then say it
/// cannot reach it.
fn create_default_workspace(ws: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if std::fs::symlink_metadata(ws).is_ok() {
        return Ok(());
    }
    if let Some(dir) = ws.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    if is_root() {
        let target = Path::new(ROOT_WORKSPACE);
        std::fs::create_dir_all(target)
            .with_context(|| format!("creating workspace {}", target.display()))?;
        std::os::unix::fs::symlink(target, ws)
            .with_context(|| format!("linking {} to {}", ws.display(), target.display()))?;
        return Ok(());
    }
    std::fs::create_dir_all(ws).with_context(|| format!("creating workspace {}", ws.display()))
}

/// The workspace to use: the one given, or the default (created on first use), canonicalized
/// when this user can see it. When it cannot (the agent and sandboxd are different users and the
/// workspaces belong to sandboxd's), the absolute path goes to sandboxd as given: sandboxd
/// resolves it beneath its roots without following symlinks out, which is the check that counts.
fn resolve_workspace(given: Option<&Path>) -> Result<PathBuf> {
    let workspace = given.map(PathBuf::from).unwrap_or_else(default_workspace);
    if given.is_none() {
        create_default_workspace(&workspace)?;
    }
    match workspace.canonicalize() {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            std::path::absolute(&workspace)
                .with_context(|| format!("workspace {}", workspace.display()))
        }
        Err(e) => Err(e).with_context(|| format!("workspace {}", workspace.display())),
    }
}

/// `.` dropped and `..` taking back the component before it, lexically. None when a `..` climbs
/// above the start of a relative path (`..` at `/` stays at `/`, as the kernel does).
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out: Vec<Component> = vec![];
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out.iter().map(|c| c.as_os_str()).collect())
}

/// A working directory as sandboxd's `cwd`, relative to the workspace: a relative `dir` is taken
/// inside the workspace, an absolute one must lie inside it and becomes the rest of the path.
/// Checked lexically, by components (the agent may not be able to see the workspace; sandboxd's
/// openat2 RESOLVE_BENEATH is the check that counts, symlinks included): a `..` that leaves the
/// workspace or an absolute path outside it is refused with an error naming `what`. It never
/// changes the workspace.
pub fn relative_cwd(workspace: &Path, dir: &str, what: &str) -> Result<String, String> {
    if dir.contains('\0') {
        return Err(format!("{what} contains a NUL byte"));
    }
    let outside = || {
        format!(
            "{what} {dir} is outside the workspace {}",
            workspace.display()
        )
    };
    let p = Path::new(dir);
    let rel = if p.is_absolute() {
        let (Some(ws), Some(abs)) = (normalize(workspace), normalize(p)) else {
            return Err(outside());
        };
        abs.strip_prefix(&ws).map_err(|_| outside())?.to_path_buf()
    } else {
        normalize(p).ok_or_else(outside)?
    };
    Ok(rel.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_dir_is_a_directory_inside_the_workspace() {
        let ws = Path::new("/home/u/ws");
        let cwd = |d: &str| relative_cwd(ws, d, "working_dir");
        // Relative: inside the workspace, normalised.
        assert_eq!(cwd(""), Ok("".into()));
        assert_eq!(cwd("."), Ok("".into()));
        assert_eq!(cwd("sub"), Ok("sub".into()));
        assert_eq!(cwd("./sub/deeper/"), Ok("sub/deeper".into()));
        assert_eq!(cwd("sub/../other"), Ok("other".into()));
        assert_eq!(cwd("sub/.."), Ok("".into()));
        // Absolute inside: the rest of the path.
        assert_eq!(cwd("/home/u/ws"), Ok("".into()));
        assert_eq!(cwd("/home/u/ws/"), Ok("".into()));
        assert_eq!(cwd("/home/u/ws/sub"), Ok("sub".into()));
        assert_eq!(cwd("/home/u/ws/./a/../sub"), Ok("sub".into()));
        assert_eq!(cwd("/home/u/../u/ws/sub"), Ok("sub".into()));
        // Outside: refused, naming working_dir and the workspace.
        let outside = |d: &str| format!("working_dir {d} is outside the workspace /home/u/ws");
        for d in [
            "/home/u",
            "/home/u/other",
            "/home/u/ws2",
            "/home/u/wsx/sub",
            "/",
            "/etc",
            "/home/u/ws/..",
            "/home/u/ws/sub/../../other",
        ] {
            assert_eq!(cwd(d), Err(outside(d)), "{d}");
        }
        for d in [
            "..",
            "../other",
            "sub/../..",
            "./../ws/sub",
            "a/b/../../../x",
        ] {
            assert_eq!(cwd(d), Err(outside(d)), "{d}");
        }
        assert_eq!(cwd("a\0b"), Err("working_dir contains a NUL byte".into()));
        // A workspace given with `..` or a trailing slash compares by its normal form.
        assert_eq!(
            relative_cwd(Path::new("/home/u/x/../ws/"), "/home/u/ws/sub", "cwd"),
            Ok("sub".into())
        );
        assert_eq!(
            relative_cwd(Path::new("/home/u/ws"), "/home/u", "--cwd"),
            Err("--cwd /home/u is outside the workspace /home/u/ws".into())
        );
    }
}
