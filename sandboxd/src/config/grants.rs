//! The `[[workspaces]]` grants: each checked (an absolute path beneath a workspace root, someone
//! to grant it to) and resolved to its real path, uids and gids.

use super::problem::Problem;
use super::schema::Config;
use super::source::Source;
use crate::tenants::WorkspaceGrant;
use std::path::PathBuf;

/// The problems of one `[[workspaces]]` grant, as (key, message); resolves its users and groups
/// to ids and its path to the real path as it goes. `roots`: the configured workspace roots.
pub fn check_grant(roots: &[PathBuf], g: &mut WorkspaceGrant) -> Vec<(&'static str, String)> {
    let mut out = vec![];
    if !g.path.is_absolute() {
        out.push((
            "path",
            format!("{} is not an absolute path", g.path.display()),
        ));
    } else {
        match g.path.canonicalize() {
            Err(e) => out.push(("path", format!("{}: {e}", g.path.display()))),
            Ok(real) => {
                let beneath = roots.iter().any(|r| {
                    let r = r.canonicalize().unwrap_or_else(|_| r.clone());
                    real.starts_with(r)
                });
                if !beneath {
                    out.push((
                        "path",
                        format!(
                            "{} is not beneath a workspace root ({})",
                            g.path.display(),
                            if roots.is_empty() {
                                "none configured in workspace_roots".to_string()
                            } else {
                                roots
                                    .iter()
                                    .map(|r| r.display().to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                    ));
                }
                g.path = real;
            }
        }
    }
    if g.users.is_empty() && g.groups.is_empty() {
        out.push(("users", "grants nobody: list users and/or groups".into()));
    }
    g.uids.clear();
    for u in &g.users {
        match crate::privdrop::lookup(u) {
            Ok(id) => g.uids.push(id.uid),
            Err(_) => out.push(("users", format!("user {u:?} does not exist"))),
        }
    }
    g.gids.clear();
    for name in &g.groups {
        match crate::privdrop::lookup_group(name) {
            Some(gid) => g.gids.push(gid),
            None => out.push(("groups", format!("group {name:?} does not exist"))),
        }
    }
    out
}

impl Config {
    /// Check every `[[workspaces]]` grant and resolve it (real path, uids, gids).
    pub(super) fn resolve_grants(&mut self, main: &Source) -> Vec<Problem> {
        let roots = self.workspace_roots.clone();
        let mut out = vec![];
        for (i, g) in self.workspaces.iter_mut().enumerate() {
            for (key, msg) in check_grant(&roots, g) {
                out.push(Problem {
                    file: main.path.clone(),
                    line: main.line_in_array("workspaces", i, key),
                    key: format!("workspaces[{}].{key}", i + 1),
                    msg,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::Config;
    use std::path::Path;

    #[test]
    fn workspace_grants_resolve_and_their_problems_name_file_line_and_key() {
        let base = std::env::temp_dir().join(format!("sandboxd-grants-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root/shared")).unwrap();
        std::fs::create_dir_all(base.join("elsewhere")).unwrap();
        let root = base.join("root").canonicalize().unwrap();
        // Positive control: an existing path beneath the root, an existing user and group.
        let good = format!(
            "workspace_roots = [{r:?}]\n\n[[workspaces]]\npath = {p:?}\nusers = [\"root\"]\ngroups = [\"root\"]\n",
            r = root.display().to_string(),
            p = root.join("shared").display().to_string()
        );
        let c = Config::parse(&good, Path::new("/etc/nb.toml")).unwrap();
        assert_eq!(c.workspaces.len(), 1);
        assert_eq!(c.workspaces[0].path, root.join("shared"));
        assert_eq!(c.workspaces[0].uids, vec![0]);
        assert_eq!(c.workspaces[0].gids, vec![0]);

        let text = format!(
            "workspace_roots = [{r:?}]\n\
             [[workspaces]]\n\
             path = {shared:?}\n\
             users = [\"root\", \"nb-no-such-user\"]\n\
             [[workspaces]]\n\
             groups = [\"nb-no-such-group\"]\n\
             path = {missing:?}\n\
             \n\
             [[workspaces]]\n\
             path = {outside:?}\n\
             users = [\"root\"]\n\
             [profiles.default]\n\
             timeout_secs = 5\n",
            r = root.display().to_string(),
            shared = root.join("shared").display().to_string(),
            missing = root.join("missing").display().to_string(),
            outside = base.join("elsewhere").display().to_string(),
        );
        let p = Config::parse(&text, Path::new("/etc/nb.toml"))
            .unwrap_err()
            .problems();
        let has = |s: &str| p.iter().any(|l| l.starts_with(s));
        assert!(
            has("/etc/nb.toml:4: workspaces[1].users: user \"nb-no-such-user\" does not exist"),
            "{p:#?}"
        );
        assert!(
            has("/etc/nb.toml:6: workspaces[2].groups: group \"nb-no-such-group\" does not exist"),
            "{p:#?}"
        );
        assert!(has("/etc/nb.toml:7: workspaces[2].path: "), "{p:#?}");
        assert!(
            has("/etc/nb.toml:10: workspaces[3].path: ")
                && p.iter()
                    .any(|l| l.contains("is not beneath a workspace root")),
            "{p:#?}"
        );
        assert_eq!(p.len(), 4, "{p:#?}");
        // Unknown keys in a grant stay errors.
        let e = Config::parse(
            "[[workspaces]]\npath = \"/x\"\nuser = [\"root\"]\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("user"), "{e}");
        // A grant for nobody is a mistake, not a no-op.
        let e = Config::parse(
            &format!(
                "workspace_roots = [{r:?}]\n[[workspaces]]\npath = {r:?}\n",
                r = root.display().to_string()
            ),
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x:2: workspaces[1].users: grants nobody"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
