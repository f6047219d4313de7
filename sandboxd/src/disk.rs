//! The workspace's byte ceiling (`limits.workspace_bytes`, issue #14 §4): which mechanism holds it
//! for one workspace. `probe` asks the workspace's filesystem what it offers (a host probe, no
//! privilege needed); `decide` is the pure rule; the daemon puts its answer in the spec
//! (`SandboxSpec::write_budget_bytes`), `explain` and `doctor` print it.
//!
//! - **btrfs qgroup**: the workspace lies in a btrfs subvolume whose level-0 qgroup has a limit
//!   (`btrfs quota enable`, `btrfs qgroup limit`) no larger than `workspace_bytes`. The
//!   filesystem refuses writes beyond it (EDQUOT, "Disk quota exceeded") for every sandbox and
//!   file call in that workspace together. Setting the limit needs CAP_SYS_ADMIN, which the
//!   daemon gives up at start: operators create the workspace as a subvolume with a limit,
//!   sandboxd reads and verifies it (`/sys/fs/btrfs/FSID/qgroups/0_ID/max_referenced`).
//! - **write budget** (everywhere else, and where the qgroup limit is missing or larger than
//!   `workspace_bytes`): one sandbox may write at most `workspace_bytes` to storage in total, as
//!   the kernel accounts it per process (`write_bytes` of `/proc/PID/io`, reaped children
//!   included); the sandbox's init sums it over the sandbox's processes and kills them all with
//!   `limit_hit: disk` when over (`init/budget.rs`). Project quotas (ext4, XFS) are not used.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

/// What the workspace's filesystem offers, as probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsProbe {
    /// btrfs: the subvolume holding the workspace, and its qgroup's limit.
    Btrfs { subvol: u64, qgroup: Qgroup },
    /// Another filesystem, by name (or its magic number).
    Other { fs: String },
    /// The filesystem could not be asked (the reason).
    Unknown { error: String },
}

/// The level-0 qgroup of a btrfs subvolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Qgroup {
    /// Quotas are not enabled on the filesystem.
    QuotasOff,
    /// Quotas are on, but this subvolume's qgroup has no limit.
    NoLimit,
    /// The smaller of its referenced and exclusive limits, in bytes.
    Limit(u64),
    /// The limit could not be read (the reason).
    Unreadable(String),
}

/// The mechanism that holds a workspace's ceiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ceiling {
    /// The btrfs qgroup `0/subvol` limits the subvolume to `limit` bytes.
    Qgroup { subvol: u64, limit: u64 },
    /// Each sandbox may write `bytes` in total; `why` says why the filesystem's is not used.
    WriteBudget { bytes: u64, why: String },
}

impl Ceiling {
    /// The write budget the sandbox's init enforces (0: none, the filesystem holds the ceiling).
    pub fn write_budget(&self) -> u64 {
        match self {
            Ceiling::Qgroup { .. } => 0,
            Ceiling::WriteBudget { bytes, .. } => *bytes,
        }
    }
}

/// The rule: a qgroup limit holds the ceiling when it is no larger than `workspace_bytes`;
/// otherwise (none, larger, unreadable, another filesystem) the write budget does.
pub fn decide(fs: &FsProbe, workspace_bytes: u64) -> Ceiling {
    let budget = |why: String| Ceiling::WriteBudget {
        bytes: workspace_bytes,
        why,
    };
    match fs {
        FsProbe::Btrfs { subvol, qgroup } => match qgroup {
            Qgroup::Limit(limit) if *limit <= workspace_bytes => Ceiling::Qgroup {
                subvol: *subvol,
                limit: *limit,
            },
            Qgroup::Limit(limit) => budget(format!(
                "btrfs qgroup 0/{subvol} limits {}, more than workspace_bytes",
                size(*limit)
            )),
            Qgroup::NoLimit => budget(format!("btrfs qgroup 0/{subvol} has no limit")),
            Qgroup::QuotasOff => budget("btrfs quotas are not enabled".into()),
            Qgroup::Unreadable(e) => budget(format!("btrfs qgroup 0/{subvol} unreadable: {e}")),
        },
        FsProbe::Other { fs } => budget(format!("{fs} offers no ceiling sandboxd uses")),
        FsProbe::Unknown { error } => budget(format!("filesystem unknown: {error}")),
    }
}

impl fmt::Display for Ceiling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ceiling::Qgroup { subvol, limit } => write!(
                f,
                "btrfs qgroup 0/{subvol} limit {} (the filesystem refuses writes beyond it: EDQUOT)",
                size(*limit)
            ),
            Ceiling::WriteBudget { bytes, why } => write!(
                f,
                "write budget per sandbox: {}, accounted by the sandbox's init, which kills it with limit_hit disk when over ({why})",
                size(*bytes)
            ),
        }
    }
}

/// Bytes in the largest binary unit that keeps one decimal ("1.0 GiB").
pub fn size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// The filesystem of a path (`explain`, `doctor`).
pub fn probe_path(p: &Path) -> FsProbe {
    match std::fs::File::open(p) {
        Ok(f) => probe(f.as_fd()),
        Err(e) => FsProbe::Unknown {
            error: format!("{}: {e}", p.display()),
        },
    }
}

/// The filesystem of an open directory (an O_PATH fd is fine: it is reopened for the ioctls).
// `f_type` and the magic constants are i64 here but of other widths on other targets.
#[allow(clippy::unnecessary_cast)]
pub fn probe(dir: BorrowedFd<'_>) -> FsProbe {
    // SAFETY: statfs is a C struct of integers: all-zero bytes are a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes one statfs into `st`, a local alive for the call; `dir` is a borrowed,
    // open fd.
    if unsafe { libc::fstatfs(dir.as_raw_fd(), &mut st) } != 0 {
        return FsProbe::Unknown {
            error: format!("statfs: {}", std::io::Error::last_os_error()),
        };
    }
    let magic = st.f_type as i64;
    if magic != libc::BTRFS_SUPER_MAGIC as i64 {
        return FsProbe::Other { fs: fs_name(magic) };
    }
    match btrfs_ids(dir) {
        Ok((fsid, subvol)) => FsProbe::Btrfs {
            subvol,
            qgroup: read_qgroup(Path::new("/sys/fs/btrfs"), &fsid, subvol),
        },
        Err(e) => FsProbe::Unknown {
            error: format!("btrfs, but its subvolume is unknown: {e}"),
        },
    }
}

#[allow(clippy::unnecessary_cast)]
fn fs_name(magic: i64) -> String {
    let known = [
        (libc::EXT4_SUPER_MAGIC as i64, "ext4"),
        (libc::XFS_SUPER_MAGIC as i64, "xfs"),
        (libc::TMPFS_MAGIC as i64, "tmpfs"),
        (libc::OVERLAYFS_SUPER_MAGIC as i64, "overlayfs"),
        (libc::NFS_SUPER_MAGIC as i64, "nfs"),
    ];
    known
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("filesystem 0x{magic:x}"))
}

// The btrfs ioctls used (linux/btrfs.h): both are allowed without privilege.
const BTRFS_IOCTL_MAGIC: u64 = 0x94;
const fn ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | (BTRFS_IOCTL_MAGIC << 8) | nr
}
/// `_IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args)`: with objectid 256 (the first free
/// objectid), the id of the subvolume (tree) holding the fd, for anyone.
const BTRFS_IOC_INO_LOOKUP: u64 = ioc(3, 18, 4096);
/// `_IOR(0x94, 31, struct btrfs_ioctl_fs_info_args)`: the filesystem's fsid.
const BTRFS_IOC_FS_INFO: u64 = ioc(2, 31, 1024);

#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    rest: [u8; 1024 - 32],
}

/// The fsid (as sysfs names it) and the subvolume id of a directory on btrfs.
fn btrfs_ids(dir: BorrowedFd<'_>) -> std::io::Result<(String, u64)> {
    // An O_PATH fd takes no ioctl: open the directory itself.
    let fd = crate::workspace::reopen_dir(dir)?;
    let mut lookup = InoLookupArgs {
        treeid: 0,
        objectid: 256,
        name: [0; 4080],
    };
    // SAFETY: the ioctl reads and writes exactly this 4096-byte struct.
    if unsafe { libc::ioctl(fd.as_raw_fd(), BTRFS_IOC_INO_LOOKUP as _, &mut lookup) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut info = FsInfoArgs {
        max_id: 0,
        num_devices: 0,
        fsid: [0; 16],
        rest: [0; 1024 - 32],
    };
    // SAFETY: the ioctl writes exactly this 1024-byte struct.
    if unsafe { libc::ioctl(fd.as_raw_fd(), BTRFS_IOC_FS_INFO as _, &mut info) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((uuid(&info.fsid), lookup.treeid))
}

/// 16 bytes as a lower-case 8-4-4-4-12 UUID.
fn uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The limit of qgroup `0/subvol` as sysfs shows it (0: none).
fn read_qgroup(sysfs: &Path, fsid: &str, subvol: u64) -> Qgroup {
    let qgroups = sysfs.join(fsid).join("qgroups");
    if !qgroups.is_dir() {
        return Qgroup::QuotasOff;
    }
    let dir = qgroups.join(format!("0_{subvol}"));
    let read = |name: &str| -> Result<u64, String> {
        let p = dir.join(name);
        let s = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        s.trim()
            .parse::<u64>()
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    match (read("max_referenced"), read("max_exclusive")) {
        (Ok(r), Ok(e)) => match [r, e].into_iter().filter(|v| *v > 0).min() {
            Some(l) => Qgroup::Limit(l),
            None => Qgroup::NoLimit,
        },
        (Err(e), _) | (_, Err(e)) => Qgroup::Unreadable(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qgroup_limit_holds_the_ceiling_only_when_it_is_no_larger() {
        let b = |q| FsProbe::Btrfs {
            subvol: 257,
            qgroup: q,
        };
        let c = decide(&b(Qgroup::Limit(16 << 20)), 1 << 30);
        assert_eq!(
            c,
            Ceiling::Qgroup {
                subvol: 257,
                limit: 16 << 20
            }
        );
        assert_eq!(c.write_budget(), 0);
        assert!(c
            .to_string()
            .starts_with("btrfs qgroup 0/257 limit 16.0 MiB"));
        for (q, why) in [
            (Qgroup::Limit(2 << 30), "limits 2.0 GiB, more than"),
            (Qgroup::NoLimit, "has no limit"),
            (Qgroup::QuotasOff, "quotas are not enabled"),
            (Qgroup::Unreadable("x".into()), "unreadable"),
        ] {
            let c = decide(&b(q), 1 << 30);
            assert_eq!(c.write_budget(), 1 << 30, "{c}");
            assert!(c.to_string().contains(why), "{c}");
            assert!(c
                .to_string()
                .starts_with("write budget per sandbox: 1.0 GiB"));
        }
        let c = decide(&FsProbe::Other { fs: "ext4".into() }, 16 << 20);
        assert_eq!(c.write_budget(), 16 << 20);
        assert!(c.to_string().contains("ext4 offers no ceiling"));
    }

    #[test]
    fn sysfs_limits_are_read_as_the_kernel_writes_them() {
        let d = std::env::temp_dir().join(format!("nanobot-disk-{}", std::process::id()));
        let q = d.join("u").join("qgroups").join("0_257");
        std::fs::create_dir_all(&q).unwrap();
        assert_eq!(read_qgroup(&d, "none", 257), Qgroup::QuotasOff);
        assert!(matches!(read_qgroup(&d, "u", 258), Qgroup::Unreadable(_)));
        std::fs::write(q.join("max_referenced"), "0\n").unwrap();
        std::fs::write(q.join("max_exclusive"), "0\n").unwrap();
        assert_eq!(read_qgroup(&d, "u", 257), Qgroup::NoLimit);
        std::fs::write(q.join("max_referenced"), "16777216\n").unwrap();
        assert_eq!(read_qgroup(&d, "u", 257), Qgroup::Limit(16 << 20));
        std::fs::write(q.join("max_exclusive"), "1048576\n").unwrap();
        assert_eq!(read_qgroup(&d, "u", 257), Qgroup::Limit(1 << 20));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn this_hosts_temp_dir_is_probed() {
        let p = probe_path(&std::env::temp_dir());
        assert!(!matches!(p, FsProbe::Unknown { .. }), "{p:?}");
        assert_eq!(
            uuid(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab".to_string()
        );
        assert_eq!(size(1 << 30), "1.0 GiB");
        assert_eq!(size(100), "100 B");
    }
}
