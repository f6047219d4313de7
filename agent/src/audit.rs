//! The agent's own log, `~/.nanobot/logs/nanobot.log`: one line per tool call, in the words the
//! security guide greps for (`ExecTool:`, `write_file`, `edit_file`, `Access denied`,
//! `blocked by safety guard`). Directory 0700, file 0600, rotated by size.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Rotate when the log passes this size; keep this many old files.
pub const MAX_BYTES: u64 = 10 << 20;
pub const KEEP: usize = 3;

pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
}

impl AuditLog {
    pub fn new(path: PathBuf) -> AuditLog {
        AuditLog {
            path,
            max_bytes: MAX_BYTES,
        }
    }

    #[cfg(test)]
    pub fn with_max_bytes(mut self, n: u64) -> AuditLog {
        self.max_bytes = n;
        self
    }

    /// Append one line. Logging never fails a tool call: problems go to stderr once per call.
    pub fn line(&self, level: &str, msg: &str) {
        if let Err(e) = self.write(level, msg) {
            eprintln!("nanobot: cannot write {}: {e}", self.path.display());
        }
    }

    fn write(&self, level: &str, msg: &str) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.max_bytes) {
            rotate(&self.path);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        // An existing file keeps its mode on open; tighten it if someone loosened it.
        if f.metadata()?.permissions().mode() & 0o077 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        // One line per event: newlines inside a command or path are escaped.
        let msg = msg.replace('\n', "\\n");
        writeln!(f, "{} {level:<5} {msg}", timestamp())
    }
}

fn rotate(path: &Path) {
    let name = |i: usize| PathBuf::from(format!("{}.{i}", path.display()));
    let _ = std::fs::remove_file(name(KEEP));
    for i in (1..KEEP).rev() {
        let _ = std::fs::rename(name(i), name(i + 1));
    }
    let _ = std::fs::rename(path, name(1));
}

/// UTC time as `YYYY-MM-DDTHH:MM:SSZ`, without a date crate.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_private_and_rotated() {
        let dir = std::env::temp_dir().join(format!("nanobot-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = AuditLog::new(dir.join("logs/nanobot.log")).with_max_bytes(200);
        for i in 0..20 {
            log.line("INFO", &format!("ExecTool: command=\"echo {i}\nx\" exit=0"));
        }
        let p = dir.join("logs/nanobot.log");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("logs")), 0o700);
        assert_eq!(mode(&p), 0o600);
        assert!(dir.join("logs/nanobot.log.1").exists());
        assert!(!dir.join("logs/nanobot.log.4").exists());
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.lines().all(|l| l.contains("ExecTool: command=")),
            "{text}"
        );
        assert!(text.contains("\\nx"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn timestamp_is_iso8601_utc() {
        let t = timestamp();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
