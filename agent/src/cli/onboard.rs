//! `nanobot onboard`: ~/.nanobot (0700), a commented config.json (0600), and the workspace with
//! starter bootstrap files, written through sandboxd like every other workspace file. An existing
//! config is never overwritten without a yes.

use crate::cli::globals::Globals;
use crate::sandbox::socket;
use anyhow::{Context, Result};
use nanobot_proto::pb::{ReadFileRequest, WriteFileRequest};
use std::io::{BufRead, IsTerminal, Write};

#[derive(clap::Args, Debug)]
pub struct OnboardArgs {
    /// Overwrite an existing config without asking
    #[arg(long)]
    pub force: bool,
}

/// The commented template, also shipped as /usr/share/doc/nanobot/config.json.example.
pub const TEMPLATE: &str = include_str!("../../../packaging/config.json");
pub const STARTER_FILES: &[(&str, &str)] = &[
    ("AGENTS.md", "# Agent instructions\n\nYou are a helpful assistant. Be concise and accurate. Explain what you are about to do before running commands.\n"),
    ("SOUL.md", "# Soul\n\nFriendly, direct and honest. Say so when you are unsure.\n"),
    ("USER.md", "# User\n\nNotes about the user: name, preferences, projects. The agent may update this file.\n"),
    ("TOOLS.md", "# Tools\n\nexec, read_file, write_file, edit_file and list_dir all work inside the workspace only; sandboxd enforces it in the kernel.\n"),
    ("memory/MEMORY.md", "# Long-term memory\n\nImportant facts to remember across sessions.\n"),
];

pub async fn run(g: &Globals, a: OnboardArgs) -> Result<i32> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let path = g.config_path();
    let dir = g.home_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 700 {}", dir.display()))?;
    let write = if path.exists() {
        a.force || ask(&format!("{} exists. Overwrite it? [y/N] ", path.display()))
    } else {
        true
    };
    if write {
        // Write a temp file 0600 and rename: the keys are never readable by others, not even
        // for a moment, and a crash leaves the old file.
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(template(g.workspace.as_deref()).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        println!("✓ wrote {} (mode 0600)", path.display());
    } else {
        println!("✓ kept the existing {}", path.display());
    }
    let loaded = g.load()?;
    let workspace = g.workspace(&loaded.config)?;
    println!("✓ workspace {}", workspace.display());
    match socket::connect(None, loaded.config.sandbox.socket.as_deref(), &workspace).await {
        Ok((socket, mut client)) => {
            let ws = workspace.to_string_lossy().into_owned();
            for (name, text) in STARTER_FILES {
                let exists = client
                    .read_file(ReadFileRequest {
                        workspace: ws.clone(),
                        path: name.to_string(),
                        offset: 0,
                        limit: 1,
                    })
                    .await
                    .is_ok();
                if exists {
                    continue;
                }
                client
                    .write_file(WriteFileRequest {
                        workspace: ws.clone(),
                        path: name.to_string(),
                        content: text.to_string(),
                    })
                    .await
                    .map_err(|st| {
                        anyhow::anyhow!(
                            "writing {name}: {}{}",
                            st.message(),
                            outside_hint(&st, &path, g.workspace.is_some())
                        )
                    })?;
                println!("✓ created {name}");
            }
            println!("✓ sandboxd at {}", socket.display());
        }
        Err(e) => {
            eprintln!(
                "nanobot: warning: starter files not written, sandboxd is not reachable: {}",
                crate::errors::anyhow_chain(&e)
            )
        }
    }
    println!(
        "\nNext: put the key of the provider in agents.defaults.provider in the environment \
         (for openrouter: export OPENROUTER_API_KEY=...), check it with `nanobot status`, then \
         run\n  nanobot agent -m \"hello\""
    );
    Ok(0)
}

/// The template, with `agents.defaults.workspace` set when `-w DIR` was given (the gateway of a
/// service user needs a workspace beneath sandboxd's root, not the default ~/.nanobot/workspace).
fn template(workspace: Option<&std::path::Path>) -> String {
    const DEFAULT: &str = r#"// "workspace": "~/.nanobot/workspace","#;
    match workspace {
        Some(w) => TEMPLATE.replacen(
            DEFAULT,
            &format!(
                "\"workspace\": {},",
                serde_json::Value::String(w.to_string_lossy().into_owned())
            ),
            1,
        ),
        None => TEMPLATE.to_string(),
    }
}

/// When sandboxd refuses the workspace (not beneath a root it serves): how to name one it serves.
fn outside_hint(st: &tonic::Status, config: &std::path::Path, named: bool) -> String {
    if !st
        .message()
        .contains("not beneath a configured workspace root")
    {
        return String::new();
    }
    if named {
        return "; name a workspace beneath that root with -w".into();
    }
    let root = st
        .message()
        .split("workspace root (")
        .nth(1)
        .and_then(|r| r.split([')', ',']).next())
        .unwrap_or("/var/lib/nanobot/workspaces");
    let user = crate::user::name().unwrap_or_else(|| "NAME".into());
    format!(
        "; give a workspace beneath that root, which onboard writes into {}: nanobot -w \
         {root}/{user} onboard --force",
        config.display()
    )
}

fn ask(q: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        eprintln!("nanobot: {q}no (not a terminal; use --force to overwrite)");
        return false;
    }
    print!("{q}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_workspace_is_written_into_the_template() {
        let t = template(Some(std::path::Path::new(
            "/var/lib/nanobot/workspaces/nanobot",
        )));
        assert!(
            t.contains(r#""workspace": "/var/lib/nanobot/workspaces/nanobot","#),
            "{t}"
        );
        assert!(!t.contains(r#"// "workspace""#));
        assert_eq!(template(None), TEMPLATE);
    }

    #[test]
    fn a_workspace_outside_the_roots_gets_the_fix() {
        let st = tonic::Status::invalid_argument(
            "workspace /h/.nanobot/workspace is not beneath a configured workspace root \
             (/var/lib/nanobot/workspaces)",
        );
        let h = outside_hint(&st, std::path::Path::new("/h/.nanobot/config.json"), false);
        assert!(
            h.contains("nanobot -w /var/lib/nanobot/workspaces/") && h.contains("onboard --force"),
            "{h}"
        );
        assert!(outside_hint(
            &tonic::Status::internal("x"),
            std::path::Path::new("/c"),
            false
        )
        .is_empty());
    }
}
