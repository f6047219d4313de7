//! `nanobot channels status`: each configured channel, as the config and the running gateway
//! (its status file) see it. `nanobot channels login whatsapp`: link the bridge to a phone by
//! showing the bridge's QR codes in the terminal.

use crate::channels::status::{self, ChannelState, Seen};
use crate::channels::whatsapp::{self, bridge, frames};
use crate::cli::globals::Globals;
use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args, Debug)]
pub struct ChannelsArgs {
    #[command(subcommand)]
    pub cmd: ChannelsCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum ChannelsCmd {
    /// Each configured channel: enabled, connected (from the running gateway), allowFrom size,
    /// last error
    Status {
        /// One JSON object instead of lines
        #[arg(long)]
        json: bool,
    },
    /// Link a channel to its account: `nanobot channels login whatsapp` shows the bridge's QR
    /// code to scan with WhatsApp (Settings → Linked devices)
    Login {
        /// The channel (whatsapp)
        channel: String,
        /// Give up after this many seconds without the phone linking
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

pub async fn run(g: &Globals, a: ChannelsArgs) -> Result<i32> {
    match a.cmd {
        ChannelsCmd::Status { json } => status(g, json),
        ChannelsCmd::Login { channel, timeout } => match channel.as_str() {
            "whatsapp" => login_whatsapp(g, Duration::from_secs(timeout)).await,
            other => bail!("nanobot channels login: {other:?} has no login; only whatsapp does"),
        },
    }
}

fn status(g: &Globals, as_json: bool) -> Result<i32> {
    let cfg = g.load()?.config;
    let seen = status::read(&g.home_dir().join(status::FILE_NAME));
    let (running, snap, unreadable) = match seen {
        Seen::Running(s) => (true, Some(s), None),
        Seen::NotRunning(s) => (false, s, None),
        Seen::Unreadable(e) => (false, None, Some(e)),
    };
    let state = |name: &str| -> ChannelState {
        snap.as_ref()
            .and_then(|s| s.channels.get(name).cloned())
            .unwrap_or_default()
    };
    if as_json {
        let channels: serde_json::Map<String, serde_json::Value> = cfg
            .channels
            .iter()
            .map(|(name, c)| {
                let st = state(name);
                (
                    name.clone(),
                    json!({
                        "enabled": c.enabled,
                        "connected": if unreadable.is_some() { json!(null) } else { json!(running && st.connected) },
                        "failed": st.failed,
                        "allowFrom": c.allow_from.len(),
                        "lastError": st.last_error,
                        "lastErrorAt": st.last_error_at,
                    }),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "gatewayRunning": if unreadable.is_some() { json!(null) } else { json!(running) },
                "statusError": unreadable,
                "channels": channels,
            }))?
        );
        return Ok(0);
    }
    match (&unreadable, running) {
        (Some(e), _) => println!(
            "gateway: unknown ({e}; run this as the gateway's user, e.g. sudo -u nanobot HOME=/var/lib/nanobot-agent nanobot channels status)"
        ),
        (None, true) => println!("gateway: running"),
        (None, false) => println!("gateway: not running (connected states unknown)"),
    }
    if cfg.channels.is_empty() {
        println!(
            "no channels configured (channels.<name> in {})",
            g.config_path().display()
        );
    }
    for (name, c) in &cfg.channels {
        let st = state(name);
        let connected = match (c.enabled, running, st.failed, st.connected) {
            (false, ..) => "-",
            (true, false, ..) if unreadable.is_some() => "unknown",
            (true, false, ..) => "gateway not running",
            (true, true, true, _) => "failed",
            (true, true, false, true) => "connected",
            (true, true, false, false) => "not connected",
        };
        println!(
            "{name}: {}, {connected}, allowFrom {}, last error: {}",
            if c.enabled { "enabled" } else { "disabled" },
            crate::text::count_as(c.allow_from.len() as u64, "entry", "entries"),
            match (&st.last_error, st.last_error_at) {
                (Some(e), Some(at)) => format!("{e} ({} s ago)", status::now().saturating_sub(at)),
                (Some(e), None) => e.clone(),
                (None, _) => "none".into(),
            }
        );
    }
    Ok(0)
}

async fn login_whatsapp(g: &Globals, limit: Duration) -> Result<i32> {
    let cfg = g.load()?.config;
    let c = cfg.channels.get("whatsapp").cloned().unwrap_or_default();
    let (endpoint, token) =
        whatsapp::bridge_settings(&c).map_err(|p| anyhow::anyhow!("{}", p.join("\n")))?;
    for w in whatsapp::warnings(&c) {
        eprintln!("nanobot: warning: {w}");
    }
    let mut ws = bridge::connect(&endpoint, &token).await?;
    eprintln!("Connected to the WhatsApp bridge at {endpoint}; waiting for a QR code…");
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next()).await.map_err(|_| {
            anyhow::anyhow!(
                "the phone was not linked within {} s (no \"connected\" status from the bridge); run the command again for a fresh QR code",
                limit.as_secs()
            )
        })?;
        let text = match frame {
            None => bail!("{}", bridge::BridgeError::Dropped),
            Some(Err(e)) => return Err(bridge::BridgeError::from(e).into()),
            Some(Ok(Message::Close(f))) => return Err(bridge::closed(f.as_ref()).into()),
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
        };
        match frames::parse(text.as_str()) {
            Ok(frames::Incoming::Qr(qr)) => {
                println!("{}", render_qr(&qr).context("rendering the QR code")?);
                println!("Scan this with WhatsApp on your phone: Settings → Linked devices → Link a device.");
            }
            Ok(frames::Incoming::Status(s)) if s == "connected" => {
                println!("WhatsApp is linked; the bridge is connected.");
                return Ok(0);
            }
            Ok(frames::Incoming::Status(s)) => eprintln!("bridge status: {s}"),
            Ok(frames::Incoming::Error(e)) => eprintln!("bridge error: {e}"),
            Ok(_) => {}
            Err(e) => eprintln!("nanobot: ignored a frame from the bridge: {e}"),
        }
    }
}

/// The QR code in half-height Unicode blocks, light on dark as terminals show best.
pub fn render_qr(data: &str) -> Result<String, qrcode::types::QrError> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(data.as_bytes())?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn qr_codes_render_as_blocks() {
        let q = super::render_qr("2@AbCdEf,ghIjK=,LmNoP=").unwrap();
        assert!(q.lines().count() > 10);
        assert!(q.contains('█') || q.contains('▀') || q.contains('▄'));
    }
}
