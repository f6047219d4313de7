//! `sandboxd explain`: a profile's effective policy, or whether one access would be allowed.

use super::config_path::config_or_default;
use crate::config::Config;
use crate::privdrop;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Profile name
    pub profile: String,
    /// Config file (TOML). Default: /etc/nanobot/sandboxd.toml when it exists
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Workspace the command would run in (default: the first workspace root)
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Would the command be allowed to read this path (or write/execute it, with --write/--exec)?
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// With --path: ask whether the command may write (create, change, remove) it instead
    #[arg(long, requires = "path", conflicts_with = "exec")]
    pub write: bool,
    /// With --path: ask whether the command may execute it instead
    #[arg(long, requires = "path")]
    pub exec: bool,
    /// Would a TCP connect to this address be allowed? PORT (on the host's loopback),
    /// HOST:PORT or [IPV6]:PORT
    #[arg(long, value_name = "[HOST:]PORT", value_parser = parse_connect)]
    pub connect: Option<ConnectTo>,
    /// Would connect() to this named AF_UNIX socket reach it?
    #[arg(long)]
    pub unix: Option<PathBuf>,
    /// The user commands run as, for the file-permission layer (default: the config's `user`,
    /// else the caller when not root)
    #[arg(long)]
    pub user: Option<String>,
}

/// Where `--connect` asks to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    /// None: the host's loopback.
    pub host: Option<String>,
    pub port: u16,
}

/// `PORT`, `HOST:PORT` or `[IPV6]:PORT`.
fn parse_connect(s: &str) -> Result<ConnectTo, String> {
    let port = |p: &str| match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{p:?} is not a port (a number from 1 to 65535)")),
    };
    if !s.contains(':') {
        return Ok(ConnectTo {
            host: None,
            port: port(s)?,
        });
    }
    let (host, p) = if let Some(rest) = s.strip_prefix('[') {
        let (addr, p) = rest
            .split_once("]:")
            .ok_or_else(|| match rest.strip_suffix(']') {
                Some(addr) => {
                    format!("{s:?}: the port is missing, expected [IPV6]:PORT as in [{addr}]:PORT")
                }
                None => format!("{s:?}: expected [IPV6]:PORT"),
            })?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{addr:?} is not an IPv6 address"))?;
        (addr, p)
    } else {
        let (host, p) = s.rsplit_once(':').unwrap_or((s, ""));
        if host.contains(':') {
            // Offer only bracketed forms that parse: the whole text as an address, and the
            // text before the last ':' with that port.
            let v6 = |a: &str| a.parse::<std::net::Ipv6Addr>().is_ok();
            let mut forms = vec![];
            if v6(s) {
                forms.push(format!("[{s}]:PORT"));
            }
            if v6(host) && port(p).is_ok() {
                forms.push(format!("[{host}]:{p}"));
            }
            if forms.is_empty() {
                forms.push("[IPV6]:PORT".to_string());
            }
            return Err(format!(
                "{s:?}: write an IPv6 address in brackets, {}",
                forms.join(" or ")
            ));
        }
        if host.is_empty() {
            return Err(format!("{s:?}: the host before ':' is missing"));
        }
        (host, p)
    };
    Ok(ConnectTo {
        host: Some(host.to_string()),
        port: port(p)?,
    })
}

/// Exit 0 when the asked access is allowed (or no question was asked), 1 when denied.
pub fn explain(a: ExplainArgs) -> Result<i32> {
    use crate::explain::{self, Want};
    let cfg = config_or_default(a.config.as_deref())?;
    let Some(p) = cfg.profiles.get(&a.profile) else {
        let known: Vec<&String> = cfg.profiles.keys().collect();
        bail!("unknown profile {:?}; available: {known:?}", a.profile);
    };
    let workspace = a
        .workspace
        .clone()
        .or_else(|| cfg.workspace_roots.first().cloned())
        .unwrap_or_else(|| PathBuf::from("/var/lib/nanobot/workspaces"));
    let abi = crate::host::landlock_abi().map(crate::confine::landlock::abi_from_version);
    if a.path.is_none() && a.connect.is_none() && a.unix.is_none() {
        print!(
            "{}",
            explain::describe(&cfg, &a.profile, p, abi, &workspace)
        );
        print!("{}", tenancy_of(&cfg));
        return Ok(0);
    }
    let abi = match abi {
        Ok(abi) => abi,
        Err(errno) => bail!(
            "{}: every exec fails closed",
            crate::host::landlock_unavailable_message(errno)
        ),
    };
    let plan = crate::confine::landlock::plan(&p.filesystem, p.network, &p.connect_ports, abi);
    let mounts = crate::confine::mounts::plan(
        &p.filesystem,
        p.limits.tmp_size_bytes,
        &crate::confine::mounts::host_probe,
    )
    .with_context(|| format!("profile {:?}: its root cannot be built", a.profile))?;
    // SAFETY: geteuid/getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let user = match a.user.as_deref().or(cfg.user.as_deref()) {
        Some(name) => {
            let id = privdrop::lookup(name)?;
            Some((id.uid, id.gid))
        }
        None if euid != 0 => Some((euid, egid)),
        // Only paths and sockets are checked against file permissions.
        None if a.path.is_none() && a.unix.is_none() => None,
        None => {
            eprintln!("note: file permissions are not checked: no sandbox user (pass --user NAME or set user in the config)");
            None
        }
    };
    let sb = explain::Sandbox {
        profile: p,
        landlock: &plan,
        mounts: &mounts,
        workspace: &workspace,
        user,
    };
    let mut all = true;
    if let Some(path) = &a.path {
        let want = if a.write {
            Want::Write
        } else if a.exec {
            Want::Exec
        } else {
            Want::Read
        };
        let d = explain::path(&sb, path, want);
        println!(
            "{} {}: {}",
            if d.allowed { "allowed" } else { "denied" },
            path.display(),
            d.reason
        );
        all &= d.allowed;
    }
    if let Some(sock) = &a.unix {
        let d = explain::unix_socket(&sb, sock);
        println!(
            "{} unix:{}: {}",
            if d.allowed { "allowed" } else { "denied" },
            sock.display(),
            d.reason
        );
        all &= d.allowed;
    }
    if let Some(to) = &a.connect {
        let d = explain::connect(&plan, p.network, to.host.as_deref(), to.port);
        let what = match &to.host {
            None => format!("tcp/{}", to.port),
            Some(h) if h.contains(':') => format!("tcp [{h}]:{}", to.port),
            Some(h) => format!("tcp {h}:{}", to.port),
        };
        println!(
            "{} {what}: {}",
            if d.allowed { "allowed" } else { "denied" },
            d.reason
        );
        all &= d.allowed;
    }
    Ok(if all { 0 } else { 1 })
}

/// The tenancy a daemon with this config (and no peer options on its command line) would have.
fn tenancy_of(cfg: &Config) -> String {
    use crate::tenants;
    let roots = cfg
        .workspace_roots
        .iter()
        .map(|r| r.canonicalize().unwrap_or_else(|_| r.clone()))
        .collect();
    let mode = tenants::mode(&cfg.allow_uids, &cfg.allow_gids, &cfg.allow_groups);
    tenants::describe(&tenants::Tenancy::new(mode, roots, cfg.workspaces.clone()))
}

#[cfg(test)]
mod tests {
    use super::{parse_connect, ConnectTo};

    #[test]
    fn connect_takes_port_host_port_and_bracketed_v6() {
        let to = |h: Option<&str>, port| ConnectTo {
            host: h.map(String::from),
            port,
        };
        assert_eq!(parse_connect("443"), Ok(to(None, 443)));
        assert_eq!(
            parse_connect("127.0.0.1:8080"),
            Ok(to(Some("127.0.0.1"), 8080))
        );
        assert_eq!(
            parse_connect("localhost:8080"),
            Ok(to(Some("localhost"), 8080))
        );
        assert_eq!(parse_connect("[::1]:8080"), Ok(to(Some("::1"), 8080)));
        for (bad, says) in [
            ("::1:8080", "in brackets"),
            ("[::1]", "expected [IPV6]:PORT"),
            ("[nope]:80", "not an IPv6 address"),
            (":80", "host before ':' is missing"),
            ("127.0.0.1:", "is not a port"),
            ("127.0.0.1:http", "is not a port"),
            ("0", "is not a port"),
            ("70000", "is not a port"),
        ] {
            let e = parse_connect(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // The bracketed form the hint offers is itself accepted (it once said `[:]:PORT`).
        for (bad, hint) in [
            ("::1", "[::1]:PORT"),
            ("fe80::1", "[fe80::1]:PORT"),
            ("2001:db8::1", "[2001:db8::1]:PORT"),
            ("[::1]", "[::1]:PORT"),
        ] {
            let e = parse_connect(bad).unwrap_err();
            assert!(e.contains(hint), "{bad}: {e}");
            assert!(
                parse_connect(&hint.replace("PORT", "443")).is_ok(),
                "{hint}"
            );
        }
    }
}
