//! The provider a command that talks to a model uses (agent, gateway), and what the user hears
//! about it: warnings only about the references of the provider chosen, errors that name the key
//! or variable to set, and the reason for the choice (shown by `status`).

use crate::config::Loaded;
use crate::provider::{self, Provider, ProviderError};
use anyhow::Result;

/// The provider for this config, with its unset references and a fallback guess printed as
/// warnings; an error says what to set.
pub fn pick(loaded: &Loaded) -> Result<Provider> {
    match provider::select(&loaded.config) {
        Ok(p) => {
            for w in warnings(loaded, &p) {
                eprintln!("nanobot: warning: {w}");
            }
            Ok(p)
        }
        Err(e) => Err(anyhow::anyhow!(explain(loaded, &e))),
    }
}

/// The unset `${VAR}` references of the enabled channels, as warnings: what `gateway` uses.
pub fn warn_unset_channels(loaded: &Loaded) {
    for w in channel_warnings(loaded) {
        eprintln!("nanobot: warning: {w}");
    }
}

/// [`warn_unset_channels`]' lines (pure): a disabled channel's references stay quiet.
pub fn channel_warnings(loaded: &Loaded) -> Vec<String> {
    loaded
        .config
        .channels
        .iter()
        .filter(|(_, c)| c.enabled)
        .flat_map(|(name, _)| {
            loaded
                .unset_under(&format!("channels.{name}"))
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Warnings for the chosen provider (pure): its own unset `${VAR}` references, and a choice made
/// by the fallback rule among several providers.
pub fn warnings(loaded: &Loaded, p: &Provider) -> Vec<String> {
    let mut out: Vec<String> = loaded
        .unset_under(&format!("providers.{}", p.name))
        .map(|r| r.to_string())
        .collect();
    if !p.passed_over.is_empty() {
        out.push(format!(
            "using provider {}, because {}; set agents.defaults.provider in {} to choose",
            p.name,
            p.why,
            loaded.path.display()
        ));
    }
    out
}

/// The provider error with what to do about it in this config (pure): the variable to export
/// when the key is an unset `${VAR}`, `nanobot onboard` when there is no config at all.
pub fn explain(loaded: &Loaded, e: &ProviderError) -> String {
    let export = |section: &str| -> Option<String> {
        let r = loaded
            .unset_under(&format!("{section}.apiKey"))
            .next()?
            .clone();
        Some(format!("{r}; run: export {}=<your key>", r.var))
    };
    match e {
        ProviderError::NoKey(p) => match export(&format!("providers.{p}")) {
            Some(hint) => format!(
                "agents.defaults.provider is {p:?}, but its key is not set: {hint} (or choose \
                 another provider in agents.defaults.provider in {})",
                loaded.path.display()
            ),
            None => format!("{e} (in {})", loaded.path.display()),
        },
        ProviderError::NoneConfigured { model } if !loaded.exists => format!(
            "no provider is configured for model {model:?}: {} does not exist; run `nanobot \
             onboard` to write it, then export your API key",
            loaded.path.display()
        ),
        ProviderError::NoneConfigured { model } => {
            let hints: Vec<String> = loaded
                .config
                .providers
                .keys()
                .filter_map(|n| export(&format!("providers.{n}")))
                .collect();
            if hints.is_empty() {
                format!("{e} ({})", loaded.path.display())
            } else {
                format!(
                    "no provider is configured for model {model:?}: no provider has a key: {}",
                    hints.join("; ")
                )
            }
        }
        _ => format!("{e} (in {})", loaded.path.display()),
    }
}

/// The one thing to do about a provider error in this config (pure): the command that writes a
/// missing config, the variable to export, else the key to set.
pub fn fix(loaded: &Loaded, e: &ProviderError) -> String {
    let unset_key = |p: &str| {
        loaded
            .unset_under(&format!("providers.{p}.apiKey"))
            .next()
            .map(|r| format!("export {}=<your key>", r.var))
    };
    match e {
        ProviderError::NoneConfigured { .. } if !loaded.exists => {
            crate::cli::globals::onboard_command(&loaded.path)
        }
        ProviderError::NoKey(p) => unset_key(p)
            .unwrap_or_else(|| format!("set providers.{p}.apiKey in {}", loaded.path.display())),
        ProviderError::NoneConfigured { .. } => loaded
            .config
            .providers
            .keys()
            .find_map(|p| unset_key(p))
            .unwrap_or_else(|| {
                format!(
                    "set agents.defaults.provider and that provider's apiKey (or apiBase) in {}",
                    loaded.path.display()
                )
            }),
        ProviderError::UnknownProvider(p) | ProviderError::NoBase(p) => format!(
            "add providers.{p} (apiKey{}) in {}, or choose another agents.defaults.provider",
            if matches!(e, ProviderError::NoBase(_)) {
                ", apiBase"
            } else {
                ""
            },
            loaded.path.display()
        ),
        _ => format!("check the providers section of {}", loaded.path.display()),
    }
}

/// `status`'s lines: which provider and model, and why; or why none.
pub fn describe(loaded: &Loaded) -> String {
    match provider::select(&loaded.config) {
        Ok(p) => {
            let mut s = format!(
                "provider:   {} ({}), because {}\nmodel:      {}",
                p.name, p.base, p.why, p.model
            );
            for r in loaded.unset_under(&format!("providers.{}", p.name)) {
                s.push_str(&format!("\n            note: {r}"));
            }
            if !p.passed_over.is_empty() {
                s.push_str(&format!(
                    "\n            note: set agents.defaults.provider in {} to choose",
                    loaded.path.display()
                ));
            }
            s
        }
        Err(e) => format!(
            "provider:   none — {}\nmodel:      {}",
            explain(loaded, &e),
            loaded.config.agents.defaults.model
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_with_env;
    use std::path::{Path, PathBuf};

    fn load(text: &str, env: &[(&str, &str)]) -> (PathBuf, Loaded) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("nanobot-pick-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        std::fs::write(&p, text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let l = load_with_env(&p, &env).unwrap();
        (dir, l)
    }

    /// The onboard template with a custom provider chosen: the openrouter reference stays quiet.
    #[test]
    fn only_the_chosen_providers_references_warn() {
        let (_d, l) = load(
            r#"{"agents": {"defaults": {"provider": "custom", "model": "m"}},
                "providers": {"openrouter": {"apiKey": "${OPENROUTER_API_KEY}"},
                              "custom": {"apiBase": "http://127.0.0.1:9/v1", "apiKey": "${CUSTOM_KEY}"}}}"#,
            &[],
        );
        let p = provider::select(&l.config).unwrap();
        let w = warnings(&l, &p);
        assert_eq!(
            w,
            vec!["providers.custom.apiKey refers to ${CUSTOM_KEY}, which is not set in the environment"]
        );
        let d = describe(&l);
        assert!(
            d.contains("provider:   custom (http://127.0.0.1:9/v1), because agents.defaults.provider = custom"),
            "{d}"
        );
    }

    #[test]
    fn an_explicit_provider_without_its_variable_names_the_export() {
        let (_d, l) = load(
            r#"{"agents": {"defaults": {"provider": "openrouter"}},
                "providers": {"openrouter": {"apiKey": "${OPENROUTER_API_KEY}"}}}"#,
            &[],
        );
        let e = provider::select(&l.config).unwrap_err();
        let s = explain(&l, &e);
        assert!(
            s.contains("${OPENROUTER_API_KEY}") && s.contains("export OPENROUTER_API_KEY="),
            "{s}"
        );
        assert!(
            describe(&l).starts_with("provider:   none — "),
            "{}",
            describe(&l)
        );
        assert_eq!(fix(&l, &e), "export OPENROUTER_API_KEY=<your key>");
    }

    #[test]
    fn a_missing_config_says_so_and_names_onboard() {
        let l = load_with_env(Path::new("/nonexistent/config.json"), &[]).unwrap();
        let e = provider::select(&l.config).unwrap_err();
        let s = explain(&l, &e);
        assert!(
            s.contains("/nonexistent/config.json does not exist") && s.contains("nanobot onboard"),
            "{s}"
        );
    }

    #[test]
    fn a_fallback_among_several_providers_is_a_warning() {
        let (_d, l) = load(
            r#"{"agents": {"defaults": {"model": "m"}},
                "providers": {"openrouter": {"apiKey": "${OPENROUTER_API_KEY}"},
                              "custom": {"apiBase": "http://127.0.0.1:9/v1"}}}"#,
            &[("OPENROUTER_API_KEY", "sk")],
        );
        let p = provider::select(&l.config).unwrap();
        assert_eq!(p.name, "openrouter");
        let w = warnings(&l, &p).join("\n");
        assert!(w.contains("set agents.defaults.provider"), "{w}");
        // Without the key there is one provider and nothing to warn about.
        let (_d, l) = load(
            r#"{"agents": {"defaults": {"model": "m"}},
                "providers": {"openrouter": {"apiKey": "${OPENROUTER_API_KEY}"},
                              "custom": {"apiBase": "http://127.0.0.1:9/v1"}}}"#,
            &[],
        );
        let p = provider::select(&l.config).unwrap();
        assert_eq!(p.name, "custom");
        assert!(warnings(&l, &p).is_empty());
    }

    #[test]
    fn only_enabled_channels_warn_about_their_references() {
        let (_d, l) = load(
            r#"{"channels": {"telegram": {"enabled": true, "token": "${TG_TOKEN}", "allowFrom": ["1"]},
                             "email": {"enabled": false, "password": "${MAIL_PASSWORD}"}}}"#,
            &[],
        );
        assert_eq!(
            channel_warnings(&l),
            vec!["channels.telegram.token refers to ${TG_TOKEN}, which is not set in the environment"]
        );
    }
}
