//! Which channels exist and what each needs in the config. Every enabled channel must name who
//! may talk to the agent: an empty `allowFrom` refuses to start (the Python version lets everyone
//! in); `["*"]` says "everyone" explicitly. A new channel adds its name to `CHANNELS` and one arm
//! to each match here (and one in `nanobot gateway`'s dispatch).

use crate::channels::{email, telegram, whatsapp};
use crate::config::{ChannelConfig, Config};
use anyhow::{bail, Result};

pub const CHANNELS: &[&str] = &["telegram", "whatsapp", "email"];

/// What an enabled channel still lacks in the config, each problem naming its key.
pub fn channel_problems(name: &str, c: &ChannelConfig) -> Vec<String> {
    match name {
        "telegram" => telegram::problems(c),
        "whatsapp" => whatsapp::problems(c),
        "email" => email::check(c),
        _ => vec![],
    }
}

/// What an enabled channel's settings risk without being wrong (printed, never fatal).
pub fn channel_warnings(name: &str, c: &ChannelConfig) -> Vec<String> {
    match name {
        "whatsapp" => whatsapp::warnings(c),
        _ => vec![],
    }
}

/// Check every enabled channel before anything starts; all problems at once.
pub fn check_channels(cfg: &Config) -> Result<Vec<(String, ChannelConfig)>> {
    let mut problems = vec![];
    let mut enabled = vec![];
    for (name, c) in cfg.channels.iter().filter(|(_, c)| c.enabled) {
        if !CHANNELS.contains(&name.as_str()) {
            problems.push(format!(
                "channels.{name}: this version supports {}; disable it or remove it",
                CHANNELS.join(", ")
            ));
            continue;
        }
        if c.allow_from.is_empty() {
            problems.push(format!(
                "channels.{name}.allowFrom is empty: list the user ids allowed to talk to the agent (or [\"*\"] for everyone, which the security guide advises against)"
            ));
        }
        problems.extend(channel_problems(name, c));
        enabled.push((name.clone(), c.clone()));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    if enabled.is_empty() {
        bail!(
            "no channel is enabled: set channels.<name>.enabled = true (supported: {})",
            CHANNELS.join(", ")
        );
    }
    Ok(enabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chan(allow: &[&str]) -> ChannelConfig {
        ChannelConfig {
            enabled: true,
            allow_from: allow.iter().map(|s| s.to_string()).collect(),
            extra: [("token".to_string(), serde_json::json!("t"))].into(),
        }
    }

    #[test]
    fn empty_allow_from_refuses_to_start() {
        let mut c = Config::default();
        c.channels.insert("telegram".into(), chan(&[]));
        let e = check_channels(&c).unwrap_err().to_string();
        assert!(e.contains("channels.telegram.allowFrom is empty"), "{e}");
        c.channels.insert("telegram".into(), chan(&["42"]));
        assert_eq!(check_channels(&c).unwrap().len(), 1);
        c.channels.insert("irc".into(), chan(&["x"]));
        assert!(check_channels(&c)
            .unwrap_err()
            .to_string()
            .contains("channels.irc"));
    }
}
