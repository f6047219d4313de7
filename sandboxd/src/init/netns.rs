//! `network = "private"`: the sandbox's own network namespace, loopback only.

use crate::step::{check, StepError};
use crate::vocab::Layer;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `network = "private"`: a network namespace of our own (owned by the sandbox's user namespace)
/// with its loopback up and nothing else.
pub(super) fn private_network() -> Result<(), StepError> {
    check(
        // SAFETY: unshare with a constant flag in this single-threaded process.
        unsafe { libc::unshare(libc::CLONE_NEWNET) },
        Layer::Namespaces,
        "unshare(CLONE_NEWNET)",
    )?;
    // SAFETY: a plain socket for the interface ioctls, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd, Layer::Namespaces, "socket for loopback setup")?;
    // SAFETY: `fd` was just returned by socket (checked non-negative above) and is referred to
    // nowhere else, so the OwnedFd is its only owner.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is a C struct of a char array and a union of integers, sockaddrs and a
    // pointer: all-zero bytes are a valid value for each (an empty name, a null pointer).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        check(
            libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr),
            Layer::Namespaces,
            "SIOCGIFFLAGS lo",
        )?;
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(
            libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr),
            Layer::Namespaces,
            "SIOCSIFFLAGS lo up",
        )?;
    }
    Ok(())
}
