//! Dropping root for good before serving: supplementary groups cleared, real/effective/saved ids
//! changed, then verified by trying to get root back.

use std::ffi::CString;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    #[error("sandboxd is running as root and no user to drop to was given; start it with --user NAME (or set user = \"NAME\" in the config): sandboxed commands never run as root")]
    NoUser,
    #[error("user {0:?} does not exist; create it (e.g. useradd --system --no-create-home {0})")]
    UnknownUser(String),
    #[error("refusing to drop to {0:?}: it is uid 0")]
    RootTarget(String),
    #[error("dropping privileges failed at {step}: {err}")]
    Syscall { step: &'static str, err: io::Error },
    #[error("privilege drop could not be verified: {0}")]
    Verify(String),
}

#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub home: String,
}

/// Look up a user in the passwd database.
pub fn lookup(name: &str) -> Result<Identity, PrivError> {
    let c = CString::new(name).map_err(|_| PrivError::UnknownUser(name.into()))?;
    // SAFETY: passwd holds only integers and raw pointers, for which all-zero bits (0 and null)
    // are valid values; it is read only after getpwnam_r/getpwuid_r filled it.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into pw/buf that we own, sized as passed.
    let r = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if r != 0 || out.is_null() {
        return Err(PrivError::UnknownUser(name.into()));
    }
    // SAFETY: on success pw_dir points into buf as a NUL-terminated string.
    let home = unsafe { std::ffi::CStr::from_ptr(pw.pw_dir) }
        .to_string_lossy()
        .into_owned();
    Ok(Identity {
        name: name.into(),
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        home,
    })
}

/// The user name of a uid, from the passwd database; None when the uid has none.
pub fn user_name(uid: libc::uid_t) -> Option<String> {
    // SAFETY: passwd holds only integers and raw pointers, for which all-zero bits (0 and null)
    // are valid values; it is read only after getpwnam_r/getpwuid_r filled it.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into pw/buf that we own, sized as passed.
    let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if r != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points into buf as a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Look up a group id by name.
pub fn lookup_group(name: &str) -> Option<libc::gid_t> {
    let c = CString::new(name).ok()?;
    // SAFETY: group holds only integers and raw pointers, for which all-zero bits (0 and null)
    // are valid values; only gr_gid is read, after getgrnam_r filled it.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 65536];
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: getgrnam_r writes into gr/buf that we own, sized as passed.
    let r = unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
    (r == 0 && !out.is_null()).then_some(gr.gr_gid)
}

fn sys(r: libc::c_int, step: &'static str) -> Result<(), PrivError> {
    if r != 0 {
        return Err(PrivError::Syscall {
            step,
            err: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Become `id` for good. Must be called before any thread is started.
pub fn drop_to(id: &Identity) -> Result<(), PrivError> {
    if id.uid == 0 {
        return Err(PrivError::RootTarget(id.name.clone()));
    }
    // SAFETY: setresgid/setresuid take integers only; setgroups(0, NULL) reads no memory (a
    // size of 0 means the null list is never dereferenced). They change only this process's
    // credentials, which is the point; the caller guarantees no other thread exists that would
    // keep the old ones (glibc's setxid broadcast aside).
    unsafe {
        sys(libc::setgroups(0, std::ptr::null()), "setgroups")?;
        sys(libc::setresgid(id.gid, id.gid, id.gid), "setresgid")?;
        sys(libc::setresuid(id.uid, id.uid, id.uid), "setresuid")?;
    }
    verify(id)
}

fn verify(id: &Identity) -> Result<(), PrivError> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: getresuid/getresgid write into our locals; setuid/setgid only take integers.
    unsafe {
        libc::getresuid(&mut r, &mut e, &mut s);
        if (r, e, s) != (id.uid, id.uid, id.uid) {
            return Err(PrivError::Verify(format!("uids are {r}/{e}/{s}")));
        }
        libc::getresgid(&mut r, &mut e, &mut s);
        if (r, e, s) != (id.gid, id.gid, id.gid) {
            return Err(PrivError::Verify(format!("gids are {r}/{e}/{s}")));
        }
        if libc::getgroups(0, std::ptr::null_mut()) > 1 {
            return Err(PrivError::Verify("supplementary groups remain".into()));
        }
        if libc::setuid(0) == 0 || libc::seteuid(0) == 0 || libc::setgid(0) == 0 {
            return Err(PrivError::Verify("root could be regained".into()));
        }
    }
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| PrivError::Verify(e.to_string()))?;
    for key in ["CapEff:", "CapPrm:", "CapAmb:"] {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or("?");
        if !v.trim_start_matches('0').is_empty() {
            return Err(PrivError::Verify(format!("{key} {v} is not empty")));
        }
    }
    Ok(())
}
