//! Which workspaces a peer may use. Pure: no filesystem, no user database; the caller passes the
//! real path the kernel resolved (openat2 beneath the root) and the peer's ids and name.
//!
//! - Single-tenant: the daemon accepts one peer uid only (no `allow_gids`/`allow_groups`, at most
//!   one distinct uid in `allow_uids`; empty `allow_uids` means the daemon's own uid). That peer
//!   owns every workspace beneath the roots, the roots included.
//! - Multi-tenant (everything else): a peer may use `<root>/<its user name>` and below, for any
//!   configured root, plus every `[[workspaces]]` grant naming its user or one of its groups. The
//!   roots themselves are never granted by default.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One `[[workspaces]]` table of the config: `path` and everything below it, for these users and
/// the members of these groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceGrant {
    pub path: PathBuf,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// `users` and `groups` resolved to ids when the config is loaded.
    #[serde(skip)]
    pub uids: Vec<u32>,
    #[serde(skip)]
    pub gids: Vec<u32>,
}

/// Whether the daemon serves one tenant or several, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenancyMode {
    Single { why: String },
    Multi { why: String },
}

/// Everything `authorize` needs, built from the configuration in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenancy {
    pub mode: TenancyMode,
    /// The workspace roots as the kernel names them (canonical).
    pub roots: Vec<PathBuf>,
    pub grants: Vec<WorkspaceGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("workspace {workspace} is not granted to uid {uid} ({name}): a peer may use {default} and the [[workspaces]] grants naming its user or groups")]
    NotGranted {
        workspace: String,
        uid: u32,
        name: String,
        default: String,
    },
}

/// The mode for these peer settings. `allow_groups` counts as groups even before it is resolved.
pub fn mode(allow_uids: &[u32], allow_gids: &[u32], allow_groups: &[String]) -> TenancyMode {
    let mut uids: Vec<u32> = allow_uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    if !allow_gids.is_empty() || !allow_groups.is_empty() {
        return TenancyMode::Multi {
            why: "peers are allowed by group (allow_gids/allow_groups)".into(),
        };
    }
    match uids.as_slice() {
        [] => TenancyMode::Single {
            why: "the only allowed peer is the daemon's own user (allow_uids is empty)".into(),
        },
        [u] => TenancyMode::Single {
            why: format!("the only allowed peer is uid {u} (allow_uids)"),
        },
        many => TenancyMode::Multi {
            why: format!("{} uids are allowed (allow_uids {many:?})", many.len()),
        },
    }
}

impl Tenancy {
    pub fn new(mode: TenancyMode, roots: Vec<PathBuf>, grants: Vec<WorkspaceGrant>) -> Tenancy {
        Tenancy {
            mode,
            roots,
            grants,
        }
    }

    pub fn single(&self) -> bool {
        matches!(self.mode, TenancyMode::Single { .. })
    }
}

/// A user name usable as one path component: anything else gets no default workspace.
fn component_name(name: &str) -> Option<&str> {
    (!name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0'))
        .then_some(name)
}

/// May this peer use the workspace the kernel resolved to `real`? `gids`: primary and
/// supplementary. Paths are compared by components, never as strings.
pub fn authorize(
    t: &Tenancy,
    peer_uid: u32,
    peer_name: Option<&str>,
    gids: &[u32],
    real: &Path,
) -> Result<(), Denied> {
    if t.single() {
        return Ok(());
    }
    if let Some(name) = peer_name.and_then(component_name) {
        if t.roots.iter().any(|r| real.starts_with(r.join(name))) {
            return Ok(());
        }
    }
    let granted = t.grants.iter().any(|g| {
        real.starts_with(&g.path)
            && (g.uids.contains(&peer_uid) || gids.iter().any(|x| g.gids.contains(x)))
    });
    if granted {
        return Ok(());
    }
    Err(Denied::NotGranted {
        workspace: real.display().to_string(),
        uid: peer_uid,
        name: peer_name.unwrap_or("no user name").to_string(),
        default: match peer_name.and_then(component_name) {
            Some(n) => format!("<root>/{n}"),
            None => "no default workspace (its uid has no user name)".into(),
        },
    })
}

/// The tenancy for `sandboxd explain`.
pub fn describe(t: &Tenancy) -> String {
    let mut s = String::from("tenancy\n");
    match &t.mode {
        TenancyMode::Single { why } => {
            s.push_str(&format!("  single-tenant: {why}\n"));
            s.push_str(
                "  that peer may use every workspace beneath the roots, the roots included\n",
            );
        }
        TenancyMode::Multi { why } => {
            s.push_str(&format!("  multi-tenant: {why}\n"));
            s.push_str("  default: a peer may use <root>/<its user name> and below; the roots themselves are never granted\n");
        }
    }
    for r in &t.roots {
        s.push_str(&format!("  root: {}\n", r.display()));
    }
    if t.grants.is_empty() {
        s.push_str("  explicit grants ([[workspaces]]): none\n");
    }
    for (i, g) in t.grants.iter().enumerate() {
        s.push_str(&format!(
            "  grant workspaces[{}]: {} and below to users {:?}, groups {:?}{}\n",
            i + 1,
            g.path.display(),
            g.users,
            g.groups,
            if t.single() {
                " (no effect: single-tenant)"
            } else {
                ""
            }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi(grants: Vec<WorkspaceGrant>) -> Tenancy {
        Tenancy::new(
            mode(&[1001, 1002], &[], &[]),
            vec![PathBuf::from("/R"), PathBuf::from("/S/ws")],
            grants,
        )
    }

    fn ok(t: &Tenancy, uid: u32, name: Option<&str>, gids: &[u32], p: &str) -> bool {
        authorize(t, uid, name, gids, Path::new(p)).is_ok()
    }

    #[test]
    fn one_tenant_means_one_uid_and_no_groups() {
        assert!(matches!(mode(&[], &[], &[]), TenancyMode::Single { .. }));
        assert!(matches!(mode(&[0], &[], &[]), TenancyMode::Single { .. }));
        assert!(matches!(
            mode(&[7, 7], &[], &[]),
            TenancyMode::Single { .. }
        ));
        assert!(matches!(mode(&[0, 7], &[], &[]), TenancyMode::Multi { .. }));
        assert!(matches!(mode(&[], &[5], &[]), TenancyMode::Multi { .. }));
        assert!(matches!(
            mode(&[7], &[], &["nanobot".into()]),
            TenancyMode::Multi { .. }
        ));
    }

    #[test]
    fn single_tenant_may_use_every_workspace_and_the_root() {
        let t = Tenancy::new(mode(&[], &[], &[]), vec![PathBuf::from("/R")], vec![]);
        assert!(ok(&t, 1001, Some("alice"), &[], "/R"));
        assert!(ok(&t, 1001, Some("alice"), &[], "/R/bob"));
        assert!(ok(&t, 1001, None, &[], "/R/x/y"));
    }

    #[test]
    fn multi_tenant_default_is_root_slash_user_name_by_components() {
        let t = multi(vec![]);
        // Positive controls: own workspace and below, under any root.
        assert!(ok(&t, 1001, Some("alice"), &[], "/R/alice"));
        assert!(ok(&t, 1001, Some("alice"), &[], "/R/alice/src/x"));
        assert!(ok(&t, 1001, Some("alice"), &[], "/S/ws/alice"));
        // Another's, the root itself, a string-prefix sibling.
        assert!(!ok(&t, 1001, Some("alice"), &[], "/R/bob"));
        assert!(!ok(&t, 1001, Some("alice"), &[], "/R"));
        assert!(!ok(&t, 1001, Some("alice"), &[], "/S/ws"));
        assert!(!ok(&t, 1001, Some("alice"), &[], "/R/alice2"));
        assert!(!ok(&t, 1001, Some("alice"), &[], "/S/alice"));
        // No name, or a name that is not one component: no default workspace.
        assert!(!ok(&t, 1001, None, &[], "/R/alice"));
        assert!(!ok(&t, 1001, Some(".."), &[], "/R"));
        assert!(!ok(&t, 1001, Some(""), &[], "/R"));
        let e = authorize(&t, 1001, Some("alice"), &[], Path::new("/R/bob")).unwrap_err();
        assert!(e.to_string().contains("/R/bob"), "{e}");
        assert!(e.to_string().contains("uid 1001"), "{e}");
        assert!(e.to_string().contains("<root>/alice"), "{e}");
    }

    #[test]
    fn explicit_grants_by_user_and_by_group() {
        let t = multi(vec![
            WorkspaceGrant {
                path: "/R/shared".into(),
                groups: vec!["team".into()],
                gids: vec![500],
                ..Default::default()
            },
            WorkspaceGrant {
                path: "/R/bob/pub".into(),
                users: vec!["alice".into()],
                uids: vec![1001],
                ..Default::default()
            },
        ]);
        // By group: primary or supplementary gid; components, not strings.
        assert!(ok(&t, 1001, Some("alice"), &[500], "/R/shared"));
        assert!(ok(&t, 1001, Some("alice"), &[100, 500], "/R/shared/a"));
        assert!(!ok(&t, 1001, Some("alice"), &[100], "/R/shared"));
        assert!(!ok(&t, 1001, Some("alice"), &[500], "/R/shared2"));
        assert!(!ok(&t, 1001, Some("alice"), &[500], "/R"));
        // By user: the uid, with or without a name.
        assert!(ok(&t, 1001, Some("alice"), &[], "/R/bob/pub/x"));
        assert!(ok(&t, 1001, None, &[], "/R/bob/pub"));
        assert!(!ok(&t, 1001, Some("alice"), &[], "/R/bob"));
        assert!(!ok(&t, 1003, Some("carol"), &[], "/R/bob/pub"));
    }

    #[test]
    fn describe_names_mode_rule_and_grants() {
        let t = multi(vec![WorkspaceGrant {
            path: "/R/shared".into(),
            groups: vec!["team".into()],
            ..Default::default()
        }]);
        let s = describe(&t);
        assert!(s.contains("multi-tenant: 2 uids are allowed"), "{s}");
        assert!(s.contains("<root>/<its user name>"), "{s}");
        assert!(s.contains("grant workspaces[1]: /R/shared"), "{s}");
        let s = describe(&Tenancy::new(mode(&[0], &[], &[]), vec![], vec![]));
        assert!(
            s.contains("single-tenant: the only allowed peer is uid 0"),
            "{s}"
        );
    }
}
