//! Reading the configuration: the main file, then one profile per `profiles.d/*.toml` file beside
//! it; every key serde rejects located at FILE:LINE (`sieve`); then `validate`, `must_exist` and
//! `grants` on what remains: every problem at once.

use super::problem::{ConfigError, Problem};
use super::schema::{Config, Profile};
use super::sieve;
use super::source::Source;
use std::path::{Path, PathBuf};

impl Config {
    /// Load `path` and the profiles in `profiles.d/*.toml` beside it (one profile per file,
    /// named after the file).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.into(),
            err,
        })?;
        let dir = path.parent().map(|d| d.join("profiles.d"));
        Self::parse_with(&text, path, dir.as_deref())
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_with(text, path, None)
    }

    fn parse_with(
        text: &str,
        path: &Path,
        profiles_dir: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let main = Source {
            path: path.into(),
            text: text.into(),
            profile: None,
        };
        let mut problems = vec![];
        let Some(mut cfg) = sieve::deserialize::<Config>(&main, "", &mut problems) else {
            return Err(ConfigError::Problems(problems));
        };
        let mut sources = vec![main];
        if let Some(dir) = profiles_dir.filter(|d| d.is_dir()) {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|err| ConfigError::Read {
                    path: dir.into(),
                    err,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for f in files {
                let name = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let text = std::fs::read_to_string(&f).map_err(|err| ConfigError::Read {
                    path: f.clone(),
                    err,
                })?;
                let src = Source {
                    path: f.clone(),
                    text,
                    profile: Some(name.clone()),
                };
                let prefix = format!("profiles.{name}");
                if let Some(p) = sieve::deserialize::<Profile>(&src, &prefix, &mut problems) {
                    match cfg.profiles.entry(name.clone()) {
                        std::collections::btree_map::Entry::Occupied(_) => problems.push(Problem {
                            file: f.clone(),
                            line: None,
                            key: prefix,
                            msg: format!("profile {name:?} is also defined in {}", path.display()),
                        }),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(p);
                        }
                    }
                }
                sources.push(src);
            }
        }
        cfg.profiles.entry("default".into()).or_default();
        // A rejected key is gone from `cfg`: a rule about that same key would only repeat it.
        let rejected: Vec<String> = problems.iter().map(|p| p.key.clone()).collect();
        let rules = cfg
            .validate(&sources)
            .into_iter()
            .chain(cfg.host_problems(&sources[0]))
            .chain(cfg.resolve_grants(&sources[0]))
            .filter(|p| !rejected.contains(&p.key));
        problems.extend(rules);
        // In the order an operator reads the files: by file, then by line (stable, so problems
        // of one line keep the order they were found in).
        problems.sort_by(|a, b| {
            (&a.file, a.line.unwrap_or(usize::MAX)).cmp(&(&b.file, b.line.unwrap_or(usize::MAX)))
        });
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Problems(problems))
        }
    }

    /// For configs built in code (no file): check the same rules.
    pub fn finish(&mut self) -> Result<(), ConfigError> {
        self.profiles.entry("default".into()).or_default();
        let src = Source {
            path: PathBuf::from(super::source::BUILT_IN),
            text: String::new(),
            profile: None,
        };
        let mut p = self.validate(std::slice::from_ref(&src));
        p.extend(self.host_problems(&src));
        p.extend(self.resolve_grants(&src));
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Problems(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::Config;
    use crate::policy::Network;
    use std::path::Path;

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = Config::parse("sokcet = \"/x\"\n", Path::new("/etc/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/x.toml") && e.contains("sokcet"), "{e}");
        let e = Config::parse("[profiles.default]\ntimeout = 3\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout"), "{e}");
    }

    #[test]
    fn one_run_names_every_problem_of_every_kind() {
        // A misspelt key no longer hides a bad value, nor either of them the rules.
        let text = "sokcet = \"/x\"\n\
                    max_connections = 10\n\
                    max_connections_per_uid = 20\n\
                    [profiles.default]\n\
                    network = \"ful\"\n\
                    timeout = 3\n\
                    [profiles.default.limits]\n\
                    processes = 0\n\
                    [profiles.web]\n\
                    connect_ports = \"443\"\n";
        let p = Config::parse(text, Path::new("/etc/nb.toml"))
            .unwrap_err()
            .problems();
        for want in [
            "/etc/nb.toml:1: sokcet: unknown key `sokcet`; did you mean `socket`?",
            "/etc/nb.toml:3: max_connections_per_uid: 20 is more than max_connections (10)",
            "/etc/nb.toml:5: profiles.default.network: unknown variant `ful`, expected one of `none`, `private`, `ports`, `full`",
            "/etc/nb.toml:6: profiles.default.timeout: unknown key `timeout`; did you mean `timeout_secs`?",
            "/etc/nb.toml:8: profiles.default.limits.processes: 0 is out of range",
            "/etc/nb.toml:10: profiles.web.connect_ports: invalid type: string \"443\", expected a sequence",
        ] {
            assert!(p.iter().any(|l| l.starts_with(want)), "{want}: {p:#?}");
        }
        assert_eq!(p.len(), 6, "{p:#?}");
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let e = Config::parse("a = 1\n[profiles.x\n", Path::new("/etc/nb.toml")).unwrap_err();
        assert!(e.to_string().starts_with("/etc/nb.toml:2: "), "{e}");
    }

    #[test]
    fn profiles_d_files_define_profiles_named_after_them() {
        let dir = std::env::temp_dir().join(format!("sandboxd-cfg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("profiles.d")).unwrap();
        let main = dir.join("sandboxd.toml");
        std::fs::write(&main, "[profiles.inline]\ntimeout_secs = 5\n").unwrap();
        std::fs::write(
            dir.join("profiles.d/web.toml"),
            "network = \"full\"\n[limits]\nprocesses = 64\n",
        )
        .unwrap();
        std::fs::write(dir.join("profiles.d/notes.txt"), "ignored").unwrap();
        let c = Config::load(&main).unwrap();
        assert_eq!(c.profiles["web"].network, Network::Full);
        assert_eq!(c.profiles["web"].limits.processes, 64);
        assert_eq!(c.profiles["inline"].timeout_secs, 5);
        // A bad file is named with its line and the profile's key path.
        std::fs::write(
            dir.join("profiles.d/bad.toml"),
            "\n[limits]\nopen_files = 3\n",
        )
        .unwrap();
        std::fs::write(dir.join("profiles.d/inline.toml"), "").unwrap();
        let p = Config::load(&main).unwrap_err().problems();
        let bad = dir.join("profiles.d/bad.toml");
        assert!(
            p.iter().any(|l| l.starts_with(&format!(
                "{}:3: profiles.bad.limits.open_files",
                bad.display()
            ))),
            "{p:#?}"
        );
        assert!(p.iter().any(|l| l.contains("also defined in")), "{p:#?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
