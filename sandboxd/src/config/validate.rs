//! Every rule the configuration must satisfy beyond its types, checked all at once so one run of
//! `sandboxd check` names every problem.

use super::problem::Problem;
use super::schema::Config;
use super::source::Source;
use crate::policy::Network;
use crate::vocab::Layer;
use std::path::Path;

impl Config {
    /// Every rule the config must satisfy; all problems at once.
    pub(super) fn validate(&self, sources: &[Source]) -> Vec<Problem> {
        let main = &sources[0];
        let mut out = vec![];
        let mut global = |key: &str, msg: String| {
            out.push(Problem {
                file: main.path.clone(),
                line: main.line_of("", key),
                key: key.into(),
                msg,
            })
        };
        if self.max_concurrent == 0 {
            global("max_concurrent", "must be at least 1".into());
        }
        if self.max_concurrent_per_peer == 0 {
            global("max_concurrent_per_peer", "must be at least 1".into());
        }
        for (k, v, lo, hi) in [
            ("max_connections", self.max_connections as u64, 1, 1 << 20),
            (
                "max_connections_per_uid",
                self.max_connections_per_uid as u64,
                1,
                1 << 20,
            ),
            (
                "handshake_timeout_secs",
                self.handshake_timeout_secs,
                1,
                3_600,
            ),
            ("idle_timeout_secs", self.idle_timeout_secs, 1, 86_400),
        ] {
            if v < lo || v > hi {
                global(k, format!("{v} is out of range {lo}..={hi}"));
            }
        }
        if self.max_connections_per_uid > self.max_connections {
            global(
                "max_connections_per_uid",
                format!(
                    "{} is more than max_connections ({}): one uid could take every connection",
                    self.max_connections_per_uid, self.max_connections
                ),
            );
        }
        for (k, v) in [
            ("read_max_chars", self.read_max_chars),
            ("write_max_bytes", self.write_max_bytes),
            ("list_max_entries", self.list_max_entries),
        ] {
            if v == 0 {
                global(k, "must be at least 1".into());
            }
        }
        if let Err(e) = crate::guard::Guard::new(
            self.guard_defaults,
            &self.deny_patterns,
            &self.allow_patterns,
        ) {
            global("deny_patterns", e.to_string());
        }
        for l in &self.allow_degraded {
            if !Layer::parse(l).is_some_and(|l| Layer::DEGRADABLE.contains(&l)) {
                global(
                    "allow_degraded",
                    format!(
                        "{l:?} cannot be degraded; only {:?} may be listed ({}, {}, {} and {} are always required)",
                        Layer::Landlock.as_str(),
                        Layer::Seccomp,
                        Layer::Namespaces,
                        Layer::Rlimits,
                        Layer::NoNewPrivs
                    ),
                );
            }
        }
        let socket_dir = self.socket.parent().map(Path::to_path_buf);
        for (name, p) in &self.profiles {
            // Where this profile's keys are written: its own profiles.d file, or the main file.
            let (src, prefix) = match sources.iter().find(|s| s.profile.as_deref() == Some(name)) {
                Some(s) => (s, String::new()),
                None => (main, format!("profiles.{name}")),
            };
            let mut bad = |table: &str, key: &str, msg: String| {
                let t = [prefix.as_str(), table]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(".");
                out.push(Problem {
                    file: src.path.clone(),
                    line: src.line_of(&t, key).or_else(|| src.line_of(&t, "")),
                    key: [
                        format!("profiles.{name}"),
                        table.to_string(),
                        key.to_string(),
                    ]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("."),
                    msg,
                })
            };
            if p.max_timeout_secs == 0 || p.max_timeout_secs > 86_400 {
                bad("", "max_timeout_secs", "must be between 1 and 86400".into());
            }
            if p.timeout_secs == 0 || p.timeout_secs > p.max_timeout_secs {
                bad(
                    "",
                    "timeout_secs",
                    format!(
                        "must be between 1 and max_timeout_secs ({})",
                        p.max_timeout_secs
                    ),
                );
            }
            if p.output_limit_bytes == 0 || p.output_limit_bytes > 1 << 30 {
                bad(
                    "",
                    "output_limit_bytes",
                    "must be between 1 and 1 GiB".into(),
                );
            }
            let l = &p.limits;
            for (key, v, lo, hi) in [
                ("cpu_secs", l.cpu_secs, 1, 86_400),
                (
                    "address_space_bytes",
                    l.address_space_bytes,
                    64 << 20,
                    1 << 44,
                ),
                ("file_size_bytes", l.file_size_bytes, 1, 1 << 44),
                ("open_files", l.open_files, 16, 1 << 20),
                ("processes", l.processes, 1, 1 << 16),
                ("tmp_size_bytes", l.tmp_size_bytes, 1 << 20, 1 << 40),
                ("memory_bytes", l.memory_bytes, 16 << 20, 1 << 50),
                ("pids", l.pids, 4, 1 << 22),
                (
                    "cpu_weight",
                    l.cpu_weight,
                    1,
                    crate::confine::cgroup::CPU_WEIGHT_MAX,
                ),
                ("workspace_bytes", l.workspace_bytes, 1 << 20, 1 << 50),
            ] {
                if v < lo || v > hi {
                    bad("limits", key, format!("{v} is out of range {lo}..={hi}"));
                }
            }
            let fs = &p.filesystem;
            for (key, paths, must_exist) in [
                ("read_exec", &fs.read_exec, false),
                ("read_only", &fs.read_only, true),
                ("read_write", &fs.read_write, true),
            ] {
                for path in paths {
                    if !path.is_absolute() {
                        bad(
                            "filesystem",
                            key,
                            format!("{} is not an absolute path", path.display()),
                        );
                    } else if must_exist && !path.exists() {
                        bad(
                            "filesystem",
                            key,
                            format!("{} does not exist", path.display()),
                        );
                    }
                }
            }
            for sock in &fs.unix_sockets {
                if !sock.is_absolute() {
                    bad(
                        "filesystem",
                        "unix_sockets",
                        format!("{} is not an absolute path", sock.display()),
                    );
                }
            }
            // What the sandbox's root cannot be built from (missing paths are reported above).
            match crate::confine::mounts::plan(
                fs,
                p.limits.tmp_size_bytes,
                &crate::confine::mounts::host_probe,
            ) {
                Err(crate::confine::mounts::MountPlanError::Missing { .. }) | Ok(_) => {}
                Err(crate::confine::mounts::MountPlanError::WholeRoot {
                    key: "filesystem.read_write",
                    ..
                }) => {}
                Err(e) => {
                    let key = e.key().trim_start_matches("filesystem.");
                    bad("filesystem", key, e.detail());
                }
            }
            for w in &fs.read_write {
                if w == Path::new("/") {
                    bad(
                        "filesystem",
                        "read_write",
                        "grants write access to /".into(),
                    );
                } else if let Some(sd) = &socket_dir {
                    if sd.starts_with(w) || w.starts_with(sd) {
                        bad(
                            "filesystem",
                            "read_write",
                            format!(
                                "{} grants write access to the socket's directory {}",
                                w.display(),
                                sd.display()
                            ),
                        );
                    }
                }
            }
            match p.network {
                Network::Ports if p.connect_ports.is_empty() => bad(
                    "",
                    "network",
                    "\"ports\" needs at least one port in connect_ports".into(),
                ),
                Network::Ports => {}
                _ if !p.connect_ports.is_empty() => bad(
                    "",
                    "connect_ports",
                    format!(
                        "has no effect with network = {}; use network = \"ports\"",
                        spelled(&p.network)
                    ),
                ),
                _ => {}
            }
            if p.connect_ports.contains(&0) {
                bad("", "connect_ports", "port 0 is not a port".into());
            }
            if let Err(e) = crate::guard::Guard::new(false, &p.deny_patterns, &p.allow_patterns) {
                bad("", "deny_patterns", e.to_string());
            }
            for k in p.env_set.keys() {
                if k.is_empty() || k.contains('=') || k.contains('\0') {
                    bad("env_set", k, "is not a valid variable name".into());
                }
            }
        }
        out
    }
}

/// A value as the config file spells it (`"full"`, not `Full`).
fn spelled<T: serde::Serialize>(v: &T) -> String {
    toml::Value::try_from(v).map_or_else(|e| e.to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::schema::Config;
    use std::path::Path;

    #[test]
    fn only_landlock_may_be_degraded() {
        let c = Config::parse("allow_degraded = [\"landlock\"]\n", Path::new("x")).unwrap();
        assert_eq!(c.allow_degraded, vec!["landlock".to_string()]);
        for layer in ["seccomp", "namespaces", "rlimits", "Landlock"] {
            let e = Config::parse(&format!("allow_degraded = [{layer:?}]\n"), Path::new("x"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("allow_degraded") && e.contains(layer), "{e}");
        }
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let e = Config::parse("[profiles.default]\ntimeout_secs = 900\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout_secs"), "{e}");
        let e = Config::parse(
            "[profiles.p.filesystem]\nread_write = [\"/\"]\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("write access to /"), "{e}");
        let e = Config::parse("[profiles.p.limits]\nprocess = 5\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("process"), "{e}");
        let c = Config::parse("[profiles.p.limits]\nprocesses = 5\n", Path::new("x")).unwrap();
        assert_eq!(c.profiles["p"].limits.processes, 5);
        assert_eq!(c.profiles["p"].limits.open_files, 1024);
    }

    #[test]
    fn problems_name_file_line_and_key_and_come_all_at_once() {
        let text = "socket = \"/run/nb/sandboxd.sock\"\n\
                    [profiles.build]\n\
                    timeout_secs = 0\n\
                    [profiles.build.limits]\n\
                    processes = 0\n\
                    [profiles.build.filesystem]\n\
                    read_write = [\"/run\"]\n\
                    read_only = [\"/nonexistent/nb-data\"]\n";
        let e = Config::parse(text, Path::new("/etc/nb.toml")).unwrap_err();
        let p = e.problems();
        let has = |s: &str| p.iter().any(|l| l.contains(s));
        assert!(
            has("/etc/nb.toml:3: profiles.build.timeout_secs: must be between 1"),
            "{p:#?}"
        );
        assert!(
            has("/etc/nb.toml:5: profiles.build.limits.processes: 0 is out of range"),
            "{p:#?}"
        );
        assert!(has("/etc/nb.toml:7: profiles.build.filesystem.read_write: /run grants write access to the socket's directory /run/nb"), "{p:#?}");
        assert!(has("/etc/nb.toml:8: profiles.build.filesystem.read_only: /nonexistent/nb-data does not exist"), "{p:#?}");
        assert_eq!(p.len(), 4, "{p:#?}");
    }

    #[test]
    fn roots_that_cannot_be_built_are_named_with_their_key() {
        let text = "[profiles.p.filesystem]\n\
                    read_only = [\"/proc/1\"]\n\
                    [profiles.q.filesystem]\n\
                    read_exec = [\"/\"]\n\
                    unix_sockets = [\"/etc/passwd\", \"rel.sock\"]\n";
        let p = Config::parse(text, Path::new("/etc/nb.toml"))
            .unwrap_err()
            .problems();
        let has = |s: &str| p.iter().any(|l| l.contains(s));
        assert!(
            has("/etc/nb.toml:2: profiles.p.filesystem.read_only: /proc/1 is inside /proc"),
            "{p:#?}"
        );
        assert!(
            has("/etc/nb.toml:4: profiles.q.filesystem.read_exec: / would show the host's whole root"),
            "{p:#?}"
        );
        assert!(
            has("/etc/nb.toml:5: profiles.q.filesystem.unix_sockets: rel.sock is not an absolute path"),
            "{p:#?}"
        );
        // A socket that is not there yet is fine (it is bound when present); a file is not a socket.
        let c = Config::parse(
            "[profiles.p.filesystem]\nunix_sockets = [\"/run/nb-no-such.sock\"]\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.profiles["p"].filesystem.unix_sockets.len(), 1);
        let e = Config::parse(
            "[profiles.p.filesystem]\nunix_sockets = [\"/etc/passwd\"]\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/passwd is not a socket"), "{e}");
    }

    #[test]
    fn connection_keys_are_checked() {
        let c = Config::parse("", Path::new("x")).unwrap();
        assert_eq!(
            (
                c.max_connections,
                c.max_connections_per_uid,
                c.handshake_timeout_secs,
                c.idle_timeout_secs
            ),
            (512, 128, 10, 300)
        );
        let text = "max_connections = 0\n\
                    handshake_timeout_secs = 0\n\
                    idle_timeout_secs = 100000\n";
        let p = Config::parse(text, Path::new("/etc/nb.toml"))
            .unwrap_err()
            .problems();
        let has = |s: &str| p.iter().any(|l| l.contains(s));
        assert!(
            has("/etc/nb.toml:1: max_connections: 0 is out of range"),
            "{p:#?}"
        );
        assert!(
            has("/etc/nb.toml:2: handshake_timeout_secs: 0 is out of range"),
            "{p:#?}"
        );
        assert!(
            has("/etc/nb.toml:3: idle_timeout_secs: 100000 is out of range"),
            "{p:#?}"
        );
        assert!(
            has("max_connections_per_uid: 128 is more than max_connections (0)"),
            "{p:#?}"
        );
        let e = Config::parse(
            "max_connections = 10\nmax_connections_per_uid = 20\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("one uid could take every connection"), "{e}");
    }

    #[test]
    fn ports_need_ports_and_ports_need_the_ports_mode() {
        let e = Config::parse("[profiles.p]\nnetwork = \"ports\"\n", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("needs at least one port"), "{e}");
        let e = Config::parse("[profiles.p]\nconnect_ports = [443]\n", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("has no effect"), "{e}");
        // Values are echoed in the file's own spelling.
        let e = Config::parse(
            "[profiles.p]\nnetwork = \"full\"\nconnect_ports = [443]\n",
            Path::new("x"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("has no effect with network = \"full\";"),
            "{e}"
        );
        let c = Config::parse(
            "[profiles.p]\nnetwork = \"ports\"\nconnect_ports = [443]\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.profiles["p"].connect_ports, vec![443]);
    }

    #[test]
    fn workspace_bytes_defaults_below_2_gib_and_is_range_checked() {
        let c = Config::parse("", Path::new("x.toml")).unwrap();
        let w = c.profiles["default"].limits.workspace_bytes;
        assert!(w > 0 && w < 2 << 30, "{w}");
        let c = Config::parse(
            "[profiles.big.limits]\nworkspace_bytes = 8589934592\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(c.profiles["big"].limits.workspace_bytes, 8 << 30);
        let e = Config::parse(
            "[profiles.p.limits]\nworkspace_bytes = 4096\n",
            Path::new("/etc/nb.toml"),
        )
        .unwrap_err();
        assert!(
            e.problems().iter().any(|l| l.contains(
                "/etc/nb.toml:2: profiles.p.limits.workspace_bytes: 4096 is out of range"
            )),
            "{:#?}",
            e.problems()
        );
    }
}
