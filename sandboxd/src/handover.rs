//! What crosses from the daemon to the launcher and from the launcher to a sandbox init: the fd
//! batch of one exec and its order, the SCM_RIGHTS plumbing that carries it, and the constants
//! both sides of the clone agree on. The one place that knows the batch.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Namespaces every sandbox gets: its own user namespace (so RLIMIT_NPROC counts it apart and it
/// holds no privilege on the host), PID namespace (its /proc shows only itself; when its init
/// exits the kernel kills every process left), mount namespace (private /proc, /tmp, /dev/shm) and
/// IPC namespace (no SysV IPC shared with the host).
pub const CLONE_FLAGS: libc::c_int =
    libc::CLONE_NEWUSER | libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWIPC;

/// Signals whose disposition the launcher or a sandbox init changes from the default; the command
/// resets exactly these before exec (ignored signals survive execve).
pub const CHANGED_SIGNALS: &[libc::c_int] =
    &[libc::SIGCHLD, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE];

/// fds handed over per exec, in this order.
pub const FDS_PER_EXEC: usize = 4;

/// The fds of one exec, in the batch's order: status socket, stdout, stderr, workspace.
pub struct ExecFds {
    /// The sandbox's end of the per-exec status socket (`wire` frames).
    pub status: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub workspace: OwnedFd,
}

impl ExecFds {
    /// A received batch in order; None when it does not hold exactly `FDS_PER_EXEC` fds.
    pub fn from_batch(fds: Vec<OwnedFd>) -> Option<ExecFds> {
        let [status, stdout, stderr, workspace]: [OwnedFd; FDS_PER_EXEC] = fds.try_into().ok()?;
        Some(ExecFds {
            status,
            stdout,
            stderr,
            workspace,
        })
    }
}

/// The byte a batch carries: any sandbox may take it (a prepared one first).
pub const TAG_ANY: u8 = b'x';
/// The byte of a batch that must go to a sandbox created now, from the host as it is: a prepared
/// one was found stale for it (its copy of the host's mounts is older than the workspace). The
/// launcher discards every prepared sandbox it holds, since they are as old.
pub const TAG_COLD: u8 = b'c';

/// Send one exec's fds (borrowed: the caller keeps its copies) as one batch, in order, with its
/// tag (`TAG_ANY` or `TAG_COLD`).
pub fn send_exec(sock: RawFd, fds: &ExecFdsRef<'_>, tag: u8) -> io::Result<()> {
    let raw = [
        fds.status.as_raw_fd(),
        fds.stdout.as_raw_fd(),
        fds.stderr.as_raw_fd(),
        fds.workspace.as_raw_fd(),
    ];
    send_fds(sock, &raw, tag)
}

/// One exec's fds, borrowed, in the batch's order (see `ExecFds`).
pub struct ExecFdsRef<'a> {
    pub status: &'a OwnedFd,
    pub stdout: &'a OwnedFd,
    pub stderr: &'a OwnedFd,
    pub workspace: &'a OwnedFd,
}

/// Pass a received batch on unchanged (launcher → warm init).
pub fn forward(sock: RawFd, fds: &[OwnedFd]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    send_fds(sock, &raw, TAG_ANY)
}

/// A close-on-exec SOCK_SEQPACKET pair: message boundaries keep one request per fd batch.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut sv = [0 as RawFd; 2];
    // SAFETY: socketpair writes two c_ints into `sv`, a local array of two, alive through the
    // call.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded, so sv[0] and sv[1] are two new open fds nothing else in this
    // process refers to: each OwnedFd is the only owner of its fd and closes it once.
    Ok(unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) })
}

/// Send one byte carrying `fds` (at least one) in the same message.
pub fn send_fds(sock: RawFd, fds: &[RawFd], tag: u8) -> io::Result<()> {
    let byte = [tag];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let payload = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is arithmetic on its argument (marked unsafe as a C macro binding); it
    // reads and writes no memory.
    let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is a C struct of integers and raw pointers (plus padding on some targets),
    // for all of which all-zero bytes are a valid value: null pointers with zero lengths, which is
    // what sendmsg expects of the fields set to nothing below (no address, no flags).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space;
    // SAFETY: msg points at a control buffer of `space` bytes, so CMSG_FIRSTHDR is non-null and the
    // data area holds `payload` bytes.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(payload as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr() as *const u8, libc::CMSG_DATA(c), payload);
    }
    // SAFETY: sendmsg only reads, through `msg`: `iov` -> `byte` (1 byte), and `cbuf`, `space`
    // bytes holding one SCM_RIGHTS header filled in above; all are locals alive until after the
    // call. The fds in it are borrowed from the caller, who keeps them open for the call; the
    // kernel duplicates them for the receiver.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receive one batch: Ok(None) on EOF (the sender is gone).
pub fn recv_fds(sock: RawFd) -> io::Result<Option<Vec<OwnedFd>>> {
    Ok(recv_batch(sock)?.map(|(_, fds)| fds))
}

/// Receive one batch with its tag (the first byte of the message): Ok(None) on EOF.
pub fn recv_batch(sock: RawFd) -> io::Result<Option<(u8, Vec<OwnedFd>)>> {
    let mut byte = [0u8; 16];
    recv_into(sock, &mut byte)
}

/// Receive exactly one byte and the fds sent with it (none, or those of `send_fds`), from a
/// stream socket that may carry more after it: Ok(None) on EOF.
pub fn recv_byte(sock: RawFd) -> io::Result<Option<(u8, Vec<OwnedFd>)>> {
    let mut byte = [0u8; 1];
    recv_into(sock, &mut byte)
}

fn recv_into(sock: RawFd, byte: &mut [u8]) -> io::Result<Option<(u8, Vec<OwnedFd>)>> {
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut libc::c_void,
        iov_len: byte.len(),
    };
    // SAFETY: CMSG_SPACE is arithmetic on its argument (marked unsafe as a C macro binding); it
    // reads and writes no memory.
    let space = unsafe { libc::CMSG_SPACE((FDS_PER_EXEC * 4 * 2) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is a C struct of integers and raw pointers (plus padding on some targets),
    // for all of which all-zero bytes are a valid value: null pointers with zero lengths, which is
    // what recvmsg expects of the fields set to nothing below (no address, flags unset).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space;
    // SAFETY: recvmsg writes through three pointers, all to locals of this function that outlive
    // the call and are not otherwise borrowed during it: `msg` itself (msg_controllen, msg_flags),
    // `iov`, which points at `byte` with its own length (at most byte.len() bytes of data are
    // written), and `cbuf`, whose `space` bytes (msg_controllen; cbuf holds space.div_ceil(8)
    // u64s, so at least that many, aligned for cmsghdr) bound the control messages: the kernel
    // writes no more than msg_controllen and sets MSG_CTRUNC, closing the fds that did not fit.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        return Ok(None);
    }
    let mut fds = Vec::new();
    // SAFETY: recvmsg set msg_controllen to the bytes of control data it wrote into `cbuf`, and
    // CMSG_FIRSTHDR/CMSG_NXTHDR return only headers lying whole within that length (null at the
    // end), so every `*c` read is inside `cbuf`. An SCM_RIGHTS payload is cmsg_len - CMSG_LEN(0)
    // bytes of c_int after CMSG_DATA(c), inside the same header's length, read unaligned since
    // CMSG_DATA need not be aligned for c_int. Each fd was installed in our table by this
    // recvmsg (close-on-exec) and nothing else refers to it, so wrapping it in an OwnedFd gives
    // it exactly one owner.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const RawFd;
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some((byte[0], fds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn a_batch_arrives_whole_and_in_order() {
        let (a, b) = seqpacket_pair().unwrap();
        let files: Vec<std::fs::File> = (0..FDS_PER_EXEC).map(|_| tempfile_in_tmp()).collect();
        let owned: Vec<OwnedFd> = files
            .iter()
            .map(|f| f.try_clone().unwrap().into())
            .collect();
        let batch = ExecFdsRef {
            status: &owned[0],
            stdout: &owned[1],
            stderr: &owned[2],
            workspace: &owned[3],
        };
        send_exec(a.as_raw_fd(), &batch, TAG_COLD).unwrap();
        let (tag, got) = recv_batch(b.as_raw_fd()).unwrap().unwrap();
        assert_eq!(tag, TAG_COLD);
        let fds = ExecFds::from_batch(got).unwrap();
        let ino = |fd: &OwnedFd| {
            use std::os::unix::fs::MetadataExt;
            std::fs::File::from(fd.try_clone().unwrap())
                .metadata()
                .unwrap()
                .ino()
        };
        let want: Vec<u64> = owned.iter().map(ino).collect();
        assert_eq!(
            [
                ino(&fds.status),
                ino(&fds.stdout),
                ino(&fds.stderr),
                ino(&fds.workspace)
            ],
            want[..]
        );
        drop(a);
        assert!(recv_fds(b.as_raw_fd()).unwrap().is_none());
    }

    #[test]
    fn a_short_batch_is_not_an_exec() {
        assert!(ExecFds::from_batch(vec![devnull(), devnull()]).is_none());
        assert!(ExecFds::from_batch((0..FDS_PER_EXEC + 1).map(|_| devnull()).collect()).is_none());
    }

    /// An anonymous file of its own (distinct inode) that leaves nothing behind.
    fn tempfile_in_tmp() -> std::fs::File {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .open(std::env::temp_dir())
            .unwrap()
    }
}
