//! Policy → rlimits. `plan` is pure; `apply` calls setrlimit in the sandboxed child.

use crate::policy::Limits;

pub type Resource = libc::__rlimit_resource_t;

/// (resource, name, soft value) triples; see `hard` for the ceilings.
pub fn plan(l: &Limits) -> Vec<(Resource, &'static str, u64)> {
    vec![
        (libc::RLIMIT_CORE, "core", 0),
        // No raising one's own priority (the daemon's limit lets warm sandboxes return to 0).
        (libc::RLIMIT_NICE, "nice", 0),
        (libc::RLIMIT_CPU, "cpu", l.cpu_secs),
        (libc::RLIMIT_AS, "address_space", l.address_space_bytes),
        (libc::RLIMIT_FSIZE, "file_size", l.file_size_bytes),
        (libc::RLIMIT_NOFILE, "open_files", l.open_files),
        (libc::RLIMIT_NPROC, "processes", l.processes),
    ]
}

/// The hard limit for a soft limit: one second more CPU, so the kernel sends SIGXCPU (which says
/// which limit was hit) before SIGKILL; the others are equal so they cannot be raised.
pub fn hard(res: Resource, soft: u64) -> u64 {
    if res == libc::RLIMIT_CPU {
        soft.saturating_add(1)
    } else {
        soft
    }
}

/// Apply every limit; the error names the one that failed.
pub fn apply(l: &Limits) -> Result<(), (&'static str, i32)> {
    for (res, name, v) in plan(l) {
        let lim = libc::rlimit {
            rlim_cur: v,
            rlim_max: hard(res, v),
        };
        // SAFETY: setrlimit reads the struct we pass by reference.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            return Err((
                name,
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_sets_all_seven_limits_no_core_and_no_priority_raise() {
        let p = plan(&Limits::default());
        assert_eq!(p.len(), 7);
        assert!(p.iter().any(|(r, _, v)| *r == libc::RLIMIT_CORE && *v == 0));
        assert!(p.iter().any(|(r, _, v)| *r == libc::RLIMIT_NICE && *v == 0));
        let l = Limits {
            processes: 7,
            ..Limits::default()
        };
        assert!(plan(&l)
            .iter()
            .any(|(r, _, v)| *r == libc::RLIMIT_NPROC && *v == 7));
    }
}
