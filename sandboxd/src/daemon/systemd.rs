//! systemd integration: socket activation (LISTEN_FDS) and readiness (sd_notify).

use std::os::fd::FromRawFd;
use std::os::unix::net::UnixListener;

/// A listening socket passed by systemd (LISTEN_FDS), if any.
pub fn activated_listener() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let n: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || n < 1 {
        return None;
    }
    // Not for our children: the launcher and every sandbox must never hold the listening socket.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    // SAFETY: fstat/fcntl on fd 3 with a valid stat buffer; no memory is shared.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(3, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            eprintln!("sandboxd: LISTEN_FDS is set but fd 3 is not a socket; binding the configured socket instead");
            return None;
        }
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // SAFETY: systemd's protocol hands us fd 3 as an open listening socket we now own.
    Some(unsafe { UnixListener::from_raw_fd(3) })
}

pub fn notify_ready() {
    let Ok(addr) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let msg = format!("READY=1\nMAINPID={}\nSTATUS=serving", std::process::id());
    let r = if let Some(name) = addr.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), &addr)
    };
    if let Err(e) = r {
        tracing::warn!("sd_notify failed: {e}");
    }
}
