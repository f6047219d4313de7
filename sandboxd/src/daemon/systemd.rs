//! systemd integration: socket activation (LISTEN_FDS) and readiness (sd_notify).

use std::os::fd::FromRawFd;
use std::os::unix::net::UnixListener;

/// A listening socket passed by systemd (LISTEN_FDS), if any. It takes fd 3 over and removes the
/// LISTEN_* variables, so a second call finds none and returns None: fd 3 gets one owner.
///
/// # Safety
/// The process must be single-threaded: the environment is changed (`remove_var`), which races
/// any other thread reading it (getenv hands out pointers into the environment).
pub(crate) unsafe fn activated_listener() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let n: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || n < 1 {
        return None;
    }
    // Not for our children: the launcher and every sandbox must never hold the listening socket.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    // SAFETY: `st` is a local `libc::stat`, a C struct of integers only, so all-zero bytes are a
    // valid value; fstat writes into it (it lives through the call) and reads no memory of ours.
    // fd 3 is only inspected here and marked close-on-exec (no memory involved); nothing else in
    // this process owns it: it was inherited from systemd, and the LISTEN_* variables that name
    // it are gone, so no other call takes it.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(3, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            eprintln!("sandboxd: LISTEN_FDS is set but fd 3 is not a socket; binding the configured socket instead");
            return None;
        }
        libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // SAFETY: LISTEN_PID names this process, so systemd's protocol hands fd 3 to us as an open
    // listening socket; fstat above confirmed it is open and a socket. It was inherited, nothing
    // in this process has wrapped it, and the variables naming it are removed above, so this
    // UnixListener is its only owner.
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
