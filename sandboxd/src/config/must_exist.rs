//! What the configuration names on this host and `serve` needs to find there: the user to drop
//! to, the socket's group, the `allow_groups`, the workspace roots. `sandboxd check` and `serve`
//! both load through here, so check refuses whatever serve would.

use super::problem::Problem;
use super::schema::Config;
use super::source::Source;

/// How a missing user or group comes to exist.
const CREATE: &str =
    " (the .deb creates nanobot's; by hand, see README.md, \"Operators\": systemd-sysusers)";

impl Config {
    /// Names and paths of the main file that do not exist on this host, as problems.
    pub(super) fn host_problems(&self, main: &Source) -> Vec<Problem> {
        let mut out = vec![];
        let mut bad = |key: &str, msg: String| {
            out.push(Problem {
                file: main.path.clone(),
                line: main.line_of("", key),
                key: key.into(),
                msg,
            })
        };
        if let Some(u) = &self.user {
            if crate::privdrop::lookup(u).is_err() {
                bad("user", format!("user {u:?} does not exist{CREATE}"));
            }
        }
        if let Some(g) = &self.socket_group {
            if crate::privdrop::lookup_group(g).is_none() {
                bad(
                    "socket_group",
                    format!("group {g:?} does not exist{CREATE}"),
                );
            }
        }
        for g in &self.allow_groups {
            if crate::privdrop::lookup_group(g).is_none() {
                bad(
                    "allow_groups",
                    format!("group {g:?} does not exist{CREATE}"),
                );
            }
        }
        for r in &self.workspace_roots {
            if !r.is_absolute() {
                bad(
                    "workspace_roots",
                    format!("{} is not an absolute path", r.display()),
                );
                continue;
            }
            match std::fs::metadata(r) {
                Err(e) => bad("workspace_roots", format!("{}: {e}", r.display())),
                Ok(m) if !m.is_dir() => bad(
                    "workspace_roots",
                    format!("{} is not a directory", r.display()),
                ),
                Ok(_) => {}
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
    fn users_groups_and_roots_missing_on_this_host_are_problems() {
        let text = "user = \"nb-no-such-user\"\n\
                    socket_group = \"nb-no-such-group\"\n\
                    allow_groups = [\"root\", \"nb-no-such-group2\"]\n\
                    workspace_roots = [\"/nonexistent/nb-ws\", \"/etc/passwd\", \"rel\"]\n";
        let p = Config::parse(text, Path::new("/etc/nb.toml"))
            .unwrap_err()
            .problems();
        for want in [
            "/etc/nb.toml:1: user: user \"nb-no-such-user\" does not exist",
            "/etc/nb.toml:2: socket_group: group \"nb-no-such-group\" does not exist",
            "/etc/nb.toml:3: allow_groups: group \"nb-no-such-group2\" does not exist",
            "/etc/nb.toml:4: workspace_roots: /nonexistent/nb-ws: No such file",
            "/etc/nb.toml:4: workspace_roots: /etc/passwd is not a directory",
            "/etc/nb.toml:4: workspace_roots: rel is not an absolute path",
        ] {
            assert!(p.iter().any(|l| l.starts_with(want)), "{want}: {p:#?}");
        }
        assert_eq!(p.len(), 6, "{p:#?}");
        // Positive control: what exists passes.
        Config::parse(
            "user = \"root\"\nsocket_group = \"root\"\nallow_groups = [\"root\"]\nworkspace_roots = [\"/tmp\"]\n",
            Path::new("x"),
        )
        .unwrap();
    }
}
