//! Attempts one action and prints `ok` or `errno N`. The e2e tests run it outside the sandbox
//! (positive control) and inside it (the escape must fail with the exact denial).

use std::ffi::CString;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn report(r: i64) {
    if r < 0 {
        println!("errno {}", errno());
    } else {
        println!("ok");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("");
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    if let Some(r) = net(what, &arg) {
        match r {
            Ok(()) => println!("ok"),
            Err(e) => println!("errno {}", e.raw_os_error().unwrap_or(-1)),
        }
        return;
    }
    // SAFETY: this binary exists only to try these calls (inside a sandbox) and is
    // single-threaded (main starts no thread). The memory each arm hands the kernel is: static
    // NUL-terminated c"..." strings and `c`, a CString alive to the end of its arm (read only);
    // local arrays and structs (`params`, `attr`, `buf`, `src`, `sa`, the iovecs), alive through
    // the call, of the size the call is told (the kernel reads or writes no more); `sa` from
    // `abstract_addr` or all-zero (a sockaddr is integers only, so all-zero is valid) with the
    // length of what was filled in; or a null pointer where the call takes a struct, which the
    // kernel refuses (EFAULT/EINVAL) without touching memory. An fd an arm opens is its own: it
    // closes it, or the process exits right after. The raw clone has no CLONE_VM: the child
    // gets a copy of our memory and only calls _exit; the parent waits for that child alone.
    // `mmap` maps fresh anonymous memory that nothing else uses; `int 0x80` clobbers only rax
    // (declared) and touches no stack (nostack).
    let r: i64 = unsafe {
        match what {
            "ptrace" => libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) as i64,
            "unshare-user" => libc::unshare(libc::CLONE_NEWUSER) as i64,
            "unshare-user-mount" => {
                if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                    -1
                } else {
                    libc::mount(
                        c"none".as_ptr(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) as i64
                }
            }
            "mount" => libc::mount(
                c"tmpfs".as_ptr(),
                c".".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            ) as i64,
            "chroot" => libc::chroot(c".".as_ptr()) as i64,
            "keyctl" => libc::syscall(
                libc::SYS_keyctl,
                0,  /* KEYCTL_GET_KEYRING_ID */
                -3, /* session */
                0,
            ),
            "add_key" => libc::syscall(
                libc::SYS_add_key,
                c"user".as_ptr(),
                c"k".as_ptr(),
                c"v".as_ptr(),
                1usize,
                -3,
            ),
            "io_uring" => {
                let mut params = [0u8; 120];
                let fd = libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr());
                if fd >= 0 {
                    libc::close(fd as i32);
                }
                fd
            }
            "perf" => {
                let mut attr = [0u8; 128];
                attr[4..8].copy_from_slice(&128u32.to_le_bytes()); // size
                attr[0..4].copy_from_slice(&1u32.to_le_bytes()); // PERF_TYPE_SOFTWARE
                                                                 // config 0 = PERF_COUNT_SW_CPU_CLOCK; exclude_kernel|exclude_hv bits
                attr[40] = 0b0110_0000;
                let fd = libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0);
                if fd >= 0 {
                    libc::close(fd as i32);
                }
                fd
            }
            "userfaultfd" => {
                let fd = libc::syscall(
                    libc::SYS_userfaultfd,
                    libc::O_CLOEXEC | 1, /* UFFD_USER_MODE_ONLY */
                );
                if fd >= 0 {
                    libc::close(fd as i32);
                }
                fd
            }
            "bpf" => libc::syscall(libc::SYS_bpf, 0, std::ptr::null::<u8>(), 0),
            "process_vm_readv" => {
                let mut buf = [0u8; 8];
                let src = [1u8; 8];
                let local = libc::iovec {
                    iov_base: buf.as_mut_ptr() as *mut _,
                    iov_len: 8,
                };
                let remote = libc::iovec {
                    iov_base: src.as_ptr() as *mut _,
                    iov_len: 8,
                };
                libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) as i64
            }
            "clone-newuser" => {
                let pid = libc::syscall(
                    libc::SYS_clone,
                    (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64,
                    0,
                    0,
                    0,
                    0,
                );
                if pid == 0 {
                    libc::_exit(0);
                }
                if pid > 0 {
                    libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
                }
                pid
            }
            "clone3" => libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize),
            "setns" => libc::setns(0, 0) as i64,
            "open_by_handle_at" => libc::syscall(
                libc::SYS_open_by_handle_at,
                libc::AT_FDCWD,
                std::ptr::null::<u8>(),
                0,
            ),
            // TIOCSTI on /dev/null: the driver says ENOTTY, the filter says EPERM first.
            "tiocsti" => libc::syscall(libc::SYS_ioctl, 0, libc::TIOCSTI, c"x".as_ptr()),
            "tiocsti-high" => libc::syscall(
                libc::SYS_ioctl,
                0,
                0xffff_ffff_0000_0000u64 | libc::TIOCSTI,
                c"x".as_ptr(),
            ),
            "tioclinux" => libc::syscall(libc::SYS_ioctl, 0, libc::TIOCLINUX, c"x".as_ptr()),
            "socket-inet" => libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) as i64,
            "socket-inet6" => libc::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0) as i64,
            "socket-netlink" => libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0) as i64,
            "socket-packet" => libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) as i64,
            "socket-vsock" => libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) as i64,
            "socket-mptcp" => libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM,
                262, /* IPPROTO_MPTCP */
            ) as i64,
            "socket-unix" => libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) as i64,
            "connect-tcp" => {
                let port: u16 = arg(2).parse().unwrap_or(0);
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if fd < 0 {
                    -1
                } else {
                    let mut sa: libc::sockaddr_in = std::mem::zeroed();
                    sa.sin_family = libc::AF_INET as u16;
                    sa.sin_port = port.to_be();
                    sa.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
                    libc::connect(
                        fd,
                        &sa as *const _ as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_in>() as u32,
                    ) as i64
                }
            }
            "connect-abstract" => {
                let name = arg(2);
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let (sa, len) = nanobot_e2e::abstract_addr(&name);
                libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len) as i64
            }
            "x32" => libc::syscall(libc::SYS_getpid | 0x4000_0000),
            "int80" => {
                // getpid through the i386 entry point.
                let mut ret: i64 = 20;
                std::arch::asm!("int 0x80", inout("rax") ret, options(nostack));
                ret
            }
            "alloc" => {
                let gib: usize = arg(2).parse().unwrap_or(8);
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    gib << 30,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    -1
                } else {
                    0
                }
            }
            "kill" => libc::kill(arg(2).parse().unwrap_or(0), arg(3).parse().unwrap_or(0)) as i64,
            "open-read" => {
                let c = CString::new(arg(2)).unwrap_or_default();
                libc::open(c.as_ptr(), libc::O_RDONLY) as i64
            }
            "fds" => {
                let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                v.sort();
                println!("{}", v.join(" "));
                return;
            }
            _ => {
                eprintln!("unknown probe {what:?}");
                std::process::exit(2);
            }
        }
    };
    report(r);
}

/// Network probes with std sockets, addresses given as HOST PORT (127.0.0.1 or ::1).
fn net(what: &str, arg: &dyn Fn(usize) -> String) -> Option<std::io::Result<()>> {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream, UdpSocket};
    let addr = || format!("{}:{}", bracket(&arg(2)), arg(3));
    Some(match what {
        "tcp" => TcpStream::connect(addr()).map(drop),
        "udp" => {
            let local = if arg(2).contains(':') {
                "[::1]:0"
            } else {
                "127.0.0.1:0"
            };
            UdpSocket::bind(local).and_then(|s| s.send_to(b"x", addr()).map(drop))
        }
        "bind-tcp" => TcpListener::bind(addr()).map(drop),
        // Listen, touch the ready file, answer one connection with "hi".
        "serve" => (|| {
            let l = TcpListener::bind(addr())?;
            std::fs::write(arg(4), "")?;
            let (mut c, _) = l.accept()?;
            c.write_all(b"hi")
        })(),
        // Connect and print what the server says.
        "fetch" => (|| {
            let mut c = TcpStream::connect(addr())?;
            let mut s = String::new();
            c.read_to_string(&mut s)?;
            print!("{s} ");
            Ok(())
        })(),
        _ => return None,
    })
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
