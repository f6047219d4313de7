//! Page prefaulting for a warm sandbox, so the request does not pay for copy-on-write faults.

/// Break copy-on-write ahead of the request on the memory this copy of the launcher will write:
/// every first write to a page after the clone is a fault and a copy, which added up to tens of
/// µs on the request path. Only writable mappings: populating the code as well cost ~0.7 ms per
/// sandbox and, done while the previous command runs, slowed it more than it saved on a 2-core
/// machine. Best effort: a range that cannot be populated is faulted in on use as before.
pub(super) fn populate_memory() {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for (a, b) in writable_ranges(&maps) {
        // SAFETY: madvise on a mapping of our own process; POPULATE only faults pages in.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, MADV_POPULATE_WRITE) };
    }
}

/// The writable ordinary mappings of a /proc/PID/maps text, as [start, end) addresses.
fn writable_ranges(maps: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    maps.lines().filter_map(|line| {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            return None;
        };
        let name = f.nth(3).unwrap_or("");
        if name.starts_with("[v") {
            return None; // vdso, vvar, vsyscall: not ordinary memory
        }
        let (a, b) = range.split_once('-')?;
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            return None;
        };
        if !perms.starts_with("rw") {
            return None;
        }
        Some((a, b))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_writable_ordinary_mappings_are_populated() {
        let maps = "\
55d0c0000000-55d0c0001000 r--p 00000000 08:01 123 /usr/bin/sandboxd
55d0c0001000-55d0c0002000 r-xp 00001000 08:01 123 /usr/bin/sandboxd
55d0c0003000-55d0c0004000 rw-p 00003000 08:01 123 /usr/bin/sandboxd
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0 [heap]
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
7ffd00100000-7ffd00104000 r--p 00000000 00:00 0 [vvar]
7ffd00104000-7ffd00106000 rw-p 00000000 00:00 0 [vdso]
7f0000000000-7f0000001000 rw-p 00000000 00:00 0
garbage line
zz-10 rw-p 0 0 0
";
        let got: Vec<(usize, usize)> = super::writable_ranges(maps).collect();
        assert_eq!(
            got,
            vec![
                (0x55d0c0003000, 0x55d0c0004000),
                (0x55d0c1000000, 0x55d0c1021000),
                (0x7ffd00000000, 0x7ffd00021000),
                (0x7f0000000000, 0x7f0000001000),
            ]
        );
    }
}
