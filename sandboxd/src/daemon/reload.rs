//! SIGHUP: load the config again and swap it in if it is valid.

use crate::api::State;
use crate::config::Config;
use anyhow::Result;

/// SIGHUP: load the config again; swap it in only if it is valid, else keep serving the old one.
pub fn reload_on_hup(state: &State, reload: &dyn Fn() -> Result<Config>) {
    match reload() {
        Ok(new) => {
            let old = state.snapshot().cfg.clone();
            for k in restart_only_changes(&old, &new) {
                tracing::warn!(
                    key = k,
                    "config reload: {k} changed; it takes effect only after a restart"
                );
            }
            let names: Vec<String> = new.profiles.keys().cloned().collect();
            match state.replace(new) {
                Ok(()) => {
                    tracing::info!(profiles = ?names, "config reloaded (SIGHUP); running commands keep the profile they started with")
                }
                Err(e) => tracing::error!(
                    "config reload rejected, keeping the current configuration: {e}"
                ),
            }
        }
        Err(e) => {
            for line in format!("{e:#}").lines() {
                tracing::error!(
                    "config reload rejected, keeping the current configuration: {line}"
                );
            }
        }
    }
}

/// The keys fixed until a restart whose value differs between `old` and `new`, in a fixed order.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let fixed = [
        ("socket", old.socket != new.socket),
        ("user", old.user != new.user),
        (
            "workspace_roots",
            old.workspace_roots != new.workspace_roots,
        ),
        ("allow_uids", old.allow_uids != new.allow_uids),
        ("allow_gids", old.allow_gids != new.allow_gids),
        ("max_concurrent", old.max_concurrent != new.max_concurrent),
        (
            "max_connections",
            old.max_connections != new.max_connections,
        ),
        (
            "max_connections_per_uid",
            old.max_connections_per_uid != new.max_connections_per_uid,
        ),
        (
            "handshake_timeout_secs",
            old.handshake_timeout_secs != new.handshake_timeout_secs,
        ),
        (
            "idle_timeout_secs",
            old.idle_timeout_secs != new.idle_timeout_secs,
        ),
        (
            "max_request_bytes",
            old.max_request_bytes != new.max_request_bytes,
        ),
    ];
    fixed
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(k, _)| k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_restart_keys_that_changed_are_named() {
        let old = Config::default();
        assert!(restart_only_changes(&old, &old.clone()).is_empty());
        let mut new = old.clone();
        new.max_concurrent += 1;
        new.socket = "/elsewhere.sock".into();
        new.allow_uids.push(4242);
        // A key SIGHUP does apply is not warned about.
        new.read_max_chars += 1;
        assert_eq!(
            restart_only_changes(&old, &new),
            ["socket", "allow_uids", "max_concurrent"]
        );
    }
}
