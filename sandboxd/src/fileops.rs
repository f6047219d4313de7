//! The agent's file tools, run by the daemon on a workspace fd. Every path is resolved by the
//! kernel beneath the workspace (openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), and every later
//! step works on the directory fd that resolution returned, so a symlink swapped in mid-operation
//! cannot redirect it outside. Writes go to a temp file in the same directory, are fsynced and
//! renamed over the target: a crash leaves the old content or the new, never a mix.

use crate::workspace::open_beneath;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// Caps, from the config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub read_max_chars: usize,
    pub write_max_bytes: usize,
    pub list_max_entries: usize,
}

/// Files larger than this are never loaded whole; use exec with head/sed/grep instead.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path is empty")]
    Empty,
    #[error("{0}: outside the workspace")]
    Outside(String),
    #[error("{0}: outside the workspace (a hard link: the same file may be reachable outside, so it is not read)")]
    HardLink(String),
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: is a directory, not a file")]
    IsDir(String),
    #[error("{0}: not a regular file")]
    NotFile(String),
    #[error("{0}: not a directory")]
    NotDir(String),
    #[error("{path}: too large ({}, the limit is {limit}); {hint}", plural(*.size, "byte"))]
    TooLarge {
        path: String,
        size: u64,
        limit: u64,
        hint: &'static str,
    },
    #[error("{0}: binary file (contains NUL bytes); read_file only reads UTF-8 text")]
    Binary(String),
    #[error("{0}: not valid UTF-8 text")]
    InvalidUtf8(String),
    #[error("{path}: offset {offset} is past the end of the file ({})", plural(*.lines as u64, "line"))]
    Offset {
        path: String,
        offset: u32,
        lines: usize,
    },
    #[error("old_text is empty; give the exact text to replace")]
    EmptyOldText,
    #[error("old_text is only a byte order mark (U+FEFF); edit_file keeps a file's BOM as it is, so give the text to replace (write_file rewrites a file without it)")]
    BomOnlyOldText,
    #[error("{path}: old_text not found. {closest}")]
    TextNotFound { path: String, closest: String },
    #[error("{path}: old_text not found exactly, but it matches {} if whitespace is ignored (line endings are already ignored). Nothing was written. {detail}", line_span(*.first, *.last))]
    WhitespaceOnly {
        path: String,
        first: usize,
        last: usize,
        detail: String,
    },
    #[error("{path}: old_text occurs {count} times; include more surrounding lines so it occurs exactly once. Nothing was written.")]
    NotUnique { path: String, count: usize },
    #[error("{path}: permission denied")]
    Denied { path: String },
    #[error("{path}: {step}: {err}")]
    Io {
        path: String,
        step: &'static str,
        err: String,
    },
}

/// `n` and the noun, singular for one: "1 line", "2 lines".
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// "line 3" or "lines 3-5".
fn line_span(first: usize, last: usize) -> String {
    if first == last {
        format!("line {first}")
    } else {
        format!("lines {first}-{last}")
    }
}

impl FileError {
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            FileError::Nul
            | FileError::Empty
            | FileError::Binary(_)
            | FileError::InvalidUtf8(_)
            | FileError::Offset { .. }
            | FileError::EmptyOldText
            | FileError::BomOnlyOldText => Code::InvalidArgument,
            FileError::Outside(_) | FileError::HardLink(_) | FileError::Denied { .. } => {
                Code::PermissionDenied
            }
            FileError::NotFound(_) => Code::NotFound,
            FileError::IsDir(_)
            | FileError::NotFile(_)
            | FileError::NotDir(_)
            | FileError::TextNotFound { .. }
            | FileError::WhitespaceOnly { .. }
            | FileError::NotUnique { .. } => Code::FailedPrecondition,
            FileError::TooLarge { .. } => Code::ResourceExhausted,
            FileError::Io { .. } => Code::Internal,
        }
    }
}

impl From<FileError> for tonic::Status {
    fn from(e: FileError) -> Self {
        tonic::Status::new(e.code(), e.to_string())
    }
}

/// Turn a requested path into one relative to the workspace, lexically: `~` is the workspace
/// (it is HOME inside the sandbox), absolute paths must lie inside the workspace (compared by
/// components, so `/ws2` is not inside `/ws`), and `..` may not climb above the workspace. The
/// kernel then checks the result again, following symlinks, when it resolves it.
pub fn relative_path(workspace: &Path, requested: &str) -> Result<PathBuf, FileError> {
    if requested.contains('\0') {
        return Err(FileError::Nul);
    }
    let req = requested.trim();
    let p = if req == "~" {
        PathBuf::new()
    } else if let Some(rest) = req.strip_prefix("~/") {
        PathBuf::from(rest)
    } else if req.starts_with('/') {
        match Path::new(req).strip_prefix(workspace) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => return Err(FileError::Outside(requested.into())),
        }
    } else {
        PathBuf::from(req)
    };
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(FileError::Outside(requested.into()));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(FileError::Outside(requested.into()))
            }
        }
    }
    Ok(out)
}

fn map_errno(errno: i32, path: &str, step: &'static str) -> FileError {
    match errno {
        // EXDEV: a step left the workspace; ELOOP: a magic link (/proc/self/fd/...) or a loop.
        libc::EXDEV | libc::ELOOP => FileError::Outside(path.into()),
        libc::ENOENT => FileError::NotFound(path.into()),
        libc::ENOTDIR => FileError::NotDir(path.into()),
        libc::EISDIR => FileError::IsDir(path.into()),
        libc::EACCES | libc::EPERM => FileError::Denied { path: path.into() },
        libc::ENAMETOOLONG => FileError::Io {
            path: path.into(),
            step,
            err: "name too long".into(),
        },
        e => FileError::Io {
            path: path.into(),
            step,
            err: std::io::Error::from_raw_os_error(e).to_string(),
        },
    }
}

fn io_err(path: &str, step: &'static str, e: std::io::Error) -> FileError {
    map_errno(e.raw_os_error().unwrap_or(libc::EIO), path, step)
}

fn file_of(fd: OwnedFd) -> std::fs::File {
    std::fs::File::from(fd)
}

/// Open a regular file beneath the workspace for reading, refusing hard links and huge files.
fn open_text(ws: &OwnedFd, rel: &Path, shown: &str) -> Result<Vec<u8>, FileError> {
    let fd = open_beneath(ws, rel, libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK)
        .map_err(|e| map_errno(e, shown, "open"))?;
    let mut f = file_of(fd);
    let md = f.metadata().map_err(|e| io_err(shown, "stat", e))?;
    if md.is_dir() {
        return Err(FileError::IsDir(shown.into()));
    }
    if !md.is_file() {
        return Err(FileError::NotFile(shown.into()));
    }
    if md.nlink() > 1 {
        return Err(FileError::HardLink(shown.into()));
    }
    if md.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge {
            path: shown.into(),
            size: md.len(),
            limit: MAX_FILE_BYTES,
            hint: "use exec with head, sed -n or grep to read parts of it",
        });
    }
    let mut buf = Vec::with_capacity(md.len() as usize);
    Read::by_ref(&mut f)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(shown, "read", e))?;
    Ok(buf)
}

fn decode(buf: Vec<u8>, shown: &str) -> Result<String, FileError> {
    if buf[..buf.len().min(8192)].contains(&0) {
        return Err(FileError::Binary(shown.into()));
    }
    String::from_utf8(buf).map_err(|_| FileError::InvalidUtf8(shown.into()))
}

pub struct ReadOut {
    pub content: String,
    pub truncated: bool,
    pub note: String,
    pub total_lines: u32,
}

pub fn read_file(
    ws: &OwnedFd,
    rel: &Path,
    shown: &str,
    offset: u32,
    limit: u32,
    lim: Limits,
) -> Result<ReadOut, FileError> {
    if rel.as_os_str().is_empty() {
        return Err(FileError::IsDir(shown.into()));
    }
    let text = decode(open_text(ws, rel, shown)?, shown)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let total = lines.len();
    let first = offset.max(1) as usize;
    if first > total.max(1) {
        return Err(FileError::Offset {
            path: shown.into(),
            offset,
            lines: total,
        });
    }
    let end = if limit == 0 {
        total
    } else {
        (first - 1 + limit as usize).min(total)
    };
    let selected: String = lines[(first - 1).min(total)..end].concat();
    let chars = selected.chars().count();
    if chars <= lim.read_max_chars {
        return Ok(ReadOut {
            content: selected,
            truncated: false,
            note: String::new(),
            total_lines: total as u32,
        });
    }
    // Cut at the cap, on a line boundary when there is one, and say how to read on.
    let cut_byte = selected
        .char_indices()
        .nth(lim.read_max_chars)
        .map(|(i, _)| i)
        .unwrap_or(selected.len());
    let cut = match selected[..cut_byte].rfind('\n') {
        Some(nl) if nl > 0 => nl + 1,
        _ => cut_byte,
    };
    let content = selected[..cut].to_string();
    let shown_lines = content.matches('\n').count().max(1);
    let next = first + shown_lines;
    let note = format!(
        "[truncated: showing {} of {chars} ({} of {total}); read on with offset={next}]",
        plural(content.chars().count() as u64, "character"),
        line_span(first, next - 1)
    );
    Ok(ReadOut {
        content,
        truncated: true,
        note,
        total_lines: total as u32,
    })
}

/// Serializes writers of one directory entry so concurrent edits never lose an update. Striped:
/// two files may share a stripe, which only costs a little waiting.
static STRIPES: [Mutex<()>; 64] = [const { Mutex::new(()) }; 64];

fn stripe(dir: &OwnedFd, name: &std::ffi::OsStr) -> &'static Mutex<()> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Ok(md) = file_of_ref(dir).metadata() {
        (md.dev(), md.ino()).hash(&mut h);
    }
    name.hash(&mut h);
    &STRIPES[(h.finish() % STRIPES.len() as u64) as usize]
}

fn file_of_ref(fd: &OwnedFd) -> std::mem::ManuallyDrop<std::fs::File> {
    // SAFETY: a non-owning File view of a live fd; ManuallyDrop keeps it from closing it.
    std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) })
}

/// Where a write lands: the directory (as an fd resolved beneath the workspace) and the entry.
struct Target {
    dir: OwnedFd,
    name: std::ffi::OsString,
    /// Mode of the file being replaced, None when it does not exist.
    mode: Option<u32>,
}

/// Resolve the directory entry a write replaces. An existing final symlink that stays inside the
/// workspace is followed (the file it names is replaced); one that leads out is refused.
fn target(
    ws: &OwnedFd,
    ws_path: &Path,
    rel: &Path,
    shown: &str,
    create_parents: bool,
) -> Result<Target, FileError> {
    let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
        return Err(FileError::IsDir(shown.into()));
    };
    let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
    let dir = if create_parents {
        mkdirs_beneath(ws, &parent, shown)?
    } else {
        open_beneath(ws, &parent, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| map_errno(e, shown, "open parent"))?
    };
    if !is_symlink_at(&dir, &name) {
        let mode = regular_mode_at(&dir, &name, shown)?;
        return Ok(Target { dir, name, mode });
    }
    // A final symlink: let the kernel follow it beneath the workspace, then replace the file it
    // names, in that file's own directory.
    let fd = open_beneath(ws, rel, libc::O_PATH).map_err(|e| match e {
        libc::ENOENT => {
            FileError::NotFound(format!("{shown} (a symlink whose target does not exist)"))
        }
        e => map_errno(e, shown, "open"),
    })?;
    let real = crate::workspace::fd_path(&fd).ok_or_else(|| FileError::Io {
        path: shown.into(),
        step: "locate",
        err: "cannot read the resolved path".into(),
    })?;
    let ws_real = std::fs::canonicalize(ws_path).unwrap_or_else(|_| ws_path.into());
    let real_rel = real
        .strip_prefix(&ws_real)
        .map_err(|_| FileError::Outside(shown.into()))?;
    let (Some(rname), rparent) = (real_rel.file_name(), real_rel.parent()) else {
        return Err(FileError::IsDir(shown.into()));
    };
    let rdir = open_beneath(
        ws,
        rparent.unwrap_or(Path::new("")),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(|e| map_errno(e, shown, "open parent"))?;
    let rname = rname.to_os_string();
    if is_symlink_at(&rdir, &rname) {
        return Err(FileError::NotFile(shown.into()));
    }
    let mode = regular_mode_at(&rdir, &rname, shown)?;
    Ok(Target {
        dir: rdir,
        name: rname,
        mode,
    })
}

/// Mode of `name` in `dir` when it is a regular file, None when it does not exist.
fn regular_mode_at(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    shown: &str,
) -> Result<Option<u32>, FileError> {
    let c = CString::new(name.as_encoded_bytes()).map_err(|_| FileError::Nul)?;
    // SAFETY: fstatat with a valid dirfd, a NUL-terminated name and a stat buffer we own.
    let (r, st) = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        let r = libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        );
        (r, st)
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) => Ok(None),
            _ => Err(io_err(shown, "stat", e)),
        };
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Ok(Some(st.st_mode & 0o7777)),
        libc::S_IFDIR => Err(FileError::IsDir(shown.into())),
        _ => Err(FileError::NotFile(shown.into())),
    }
}

fn is_symlink_at(dir: &OwnedFd, name: &std::ffi::OsStr) -> bool {
    let Ok(c) = CString::new(name.as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: fstatat with a valid dirfd, a NUL-terminated name and a stat buffer we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFLNK
    }
}

/// Open (creating as needed) each directory of `rel` beneath the workspace, one component at a
/// time, each step resolved by the kernel beneath the previous directory fd.
fn mkdirs_beneath(ws: &OwnedFd, rel: &Path, shown: &str) -> Result<OwnedFd, FileError> {
    match open_beneath(ws, rel, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => return Ok(fd),
        Err(libc::ENOENT) => {}
        Err(e) => return Err(map_errno(e, shown, "open parent")),
    }
    let mut cur = open_beneath(ws, Path::new(""), libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| map_errno(e, shown, "open workspace"))?;
    for c in rel.components() {
        let Component::Normal(n) = c else {
            return Err(FileError::Outside(shown.into()));
        };
        let next = match open_beneath(&cur, Path::new(n), libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(libc::ENOENT) => {
                let cn = CString::new(n.as_encoded_bytes()).map_err(|_| FileError::Nul)?;
                // SAFETY: mkdirat with a valid dirfd and a NUL-terminated single component.
                let r = unsafe { libc::mkdirat(cur.as_raw_fd(), cn.as_ptr(), 0o755) };
                if r != 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(io_err(shown, "mkdir", e));
                    }
                }
                open_beneath(&cur, Path::new(n), libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(|e| map_errno(e, shown, "open new directory"))?
            }
            Err(e) => return Err(map_errno(e, shown, "open parent")),
        };
        cur = next;
    }
    Ok(cur)
}

static TMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Temp file in the target's directory, fsync, rename over the target, fsync the directory.
fn replace_atomically(t: &Target, data: &[u8], shown: &str) -> Result<(), FileError> {
    let n = TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp_name = format!(
        ".{}.nanobot-tmp-{}-{n}",
        t.name.to_string_lossy(),
        std::process::id()
    );
    let tmp_c = CString::new(tmp_name.as_bytes()).map_err(|_| FileError::Nul)?;
    let name_c = CString::new(t.name.as_encoded_bytes()).map_err(|_| FileError::Nul)?;
    let mode = t.mode.unwrap_or(0o644);
    // SAFETY: openat with a valid dirfd and a NUL-terminated single-component name.
    let fd = unsafe {
        libc::openat(
            t.dir.as_raw_fd(),
            tmp_c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io_err(
            shown,
            "create temp file",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the kernel just gave us this fd.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let unlink_tmp = || {
        // SAFETY: unlinkat with a valid dirfd and a NUL-terminated name.
        unsafe { libc::unlinkat(t.dir.as_raw_fd(), tmp_c.as_ptr(), 0) };
    };
    let written = f
        .write_all(data)
        .and_then(|_| f.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|_| f.sync_all());
    if let Err(e) = written {
        unlink_tmp();
        return Err(io_err(shown, "write", e));
    }
    drop(f);
    // SAFETY: renameat within one directory fd, both names NUL-terminated single components.
    let r = unsafe {
        libc::renameat(
            t.dir.as_raw_fd(),
            tmp_c.as_ptr(),
            t.dir.as_raw_fd(),
            name_c.as_ptr(),
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        unlink_tmp();
        return Err(io_err(shown, "rename", e));
    }
    // The rename is durable once the directory is.
    // SAFETY: openat of "." relative to a valid dirfd.
    let dfd = unsafe {
        libc::openat(
            t.dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dfd >= 0 {
        // SAFETY: fd just opened.
        let d = unsafe { std::fs::File::from_raw_fd(dfd) };
        let _ = d.sync_all();
    }
    Ok(())
}

pub struct WriteOut {
    pub bytes: u64,
    pub created: bool,
}

pub fn write_file(
    ws: &OwnedFd,
    ws_path: &Path,
    rel: &Path,
    shown: &str,
    content: &str,
    lim: Limits,
) -> Result<WriteOut, FileError> {
    if content.len() > lim.write_max_bytes {
        return Err(FileError::TooLarge {
            path: shown.into(),
            size: content.len() as u64,
            limit: lim.write_max_bytes as u64,
            hint: "split the content into several files",
        });
    }
    if rel.as_os_str().is_empty() {
        return Err(FileError::IsDir(shown.into()));
    }
    let t = target(ws, ws_path, rel, shown, true)?;
    let _g = stripe(&t.dir, &t.name)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    replace_atomically(&t, content.as_bytes(), shown)?;
    Ok(WriteOut {
        bytes: content.len() as u64,
        created: t.mode.is_none(),
    })
}

/// Replace the one occurrence of `old` in the file with `new`, atomically, keeping the file's mode;
/// concurrent edits of one file are serialized. Line endings are handled by [`edit_text`].
pub fn edit_file(
    ws: &OwnedFd,
    ws_path: &Path,
    rel: &Path,
    shown: &str,
    old: &str,
    new: &str,
    lim: Limits,
) -> Result<u64, FileError> {
    if old.is_empty() {
        return Err(FileError::EmptyOldText);
    }
    if rel.as_os_str().is_empty() {
        return Err(FileError::IsDir(shown.into()));
    }
    let t = target(ws, ws_path, rel, shown, false)?;
    if t.mode.is_none() {
        return Err(FileError::NotFound(shown.into()));
    }
    let _g = stripe(&t.dir, &t.name)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Read under the lock, through the resolved directory, so the text we edit is what we replace.
    let text = decode(open_text(&t.dir, Path::new(&t.name), shown)?, shown)?;
    let out = edit_text(&text, old, new, shown)?;
    if out.len() > lim.write_max_bytes.max(text.len()) {
        return Err(FileError::TooLarge {
            path: shown.into(),
            size: out.len() as u64,
            limit: lim.write_max_bytes as u64,
            hint: "the edited file would exceed the write limit",
        });
    }
    replace_atomically(&t, out.as_bytes(), shown)?;
    Ok(out.len() as u64)
}

/// A view of some text with its line endings turned into `\n`, remembering where each `\r\n` was
/// so offsets can be mapped back to the original.
struct Normalized {
    text: String,
    /// Offsets in `text` of the `\n`s that were `\r\n` in the original, ascending.
    crlf_at: Vec<usize>,
}

impl Normalized {
    /// `\r\n` always becomes `\n`; a lone `\r` only when `cr_is_newline` (a classic-Mac file
    /// with no `\n` at all), so a stray `\r` inside a line of an LF file is left alone.
    fn new(s: &str, cr_is_newline: bool) -> Normalized {
        let b = s.as_bytes();
        let mut text = String::with_capacity(s.len());
        let mut crlf_at = vec![];
        let (mut last, mut i) = (0, 0);
        while i < b.len() {
            if b[i] == b'\r' {
                let crlf = b.get(i + 1) == Some(&b'\n');
                if crlf || cr_is_newline {
                    // '\r' is ASCII, so these are char boundaries.
                    text.push_str(&s[last..i]);
                    if crlf {
                        crlf_at.push(text.len());
                    }
                    text.push('\n');
                    i += if crlf { 2 } else { 1 };
                    last = i;
                    continue;
                }
            }
            i += 1;
        }
        text.push_str(&s[last..]);
        Normalized { text, crlf_at }
    }

    /// The original offset of normalized offset `n` (each earlier `\r\n` is one byte longer).
    fn orig(&self, n: usize) -> usize {
        n + self.crlf_at.partition_point(|&j| j < n)
    }
}

/// The line ending a bare `\n` of `new_text` is written with: a classic-Mac file gets `\r`;
/// otherwise the style of the first of `scopes` (narrowest first: the lines actually replaced,
/// the whole matched region, the file) that has more of one ending than the other, so editing
/// the CRLF part of a mixed file keeps it CRLF; when none decides, `\n`.
fn line_ending_for(scopes: &[&str], cr_is_newline: bool) -> &'static str {
    if cr_is_newline {
        return "\r";
    }
    for s in scopes {
        let lf = s.matches('\n').count();
        let crlf = s.matches("\r\n").count();
        let lf = lf - crlf;
        if crlf != lf {
            return if crlf > lf { "\r\n" } else { "\n" };
        }
    }
    "\n"
}

/// One line of some text: its content and its line ending (`""` for a last line without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line<'a> {
    body: &'a str,
    eol: &'a str,
}

impl Line<'_> {
    fn len(&self) -> usize {
        self.body.len() + self.eol.len()
    }
}

/// Split `s` into lines at `\r\n`, `\n` and, when `cr_is_newline`, a lone `\r`; a lone `\r`
/// otherwise stays inside its line. Concatenating the lines gives `s` back exactly.
fn split_lines(s: &str, cr_is_newline: bool) -> Vec<Line<'_>> {
    let b = s.as_bytes();
    let mut out = vec![];
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        let eol_len = match b[i] {
            b'\n' => 1,
            b'\r' if b.get(i + 1) == Some(&b'\n') => 2,
            b'\r' if cr_is_newline => 1,
            _ => 0,
        };
        if eol_len == 0 {
            i += 1;
            continue;
        }
        // '\r' and '\n' are ASCII, so these are char boundaries.
        out.push(Line {
            body: &s[start..i],
            eol: &s[i..i + eol_len],
        });
        i += eol_len;
        start = i;
    }
    if start < s.len() {
        out.push(Line {
            body: &s[start..],
            eol: "",
        });
    }
    out
}

/// Whether the caller left a line of `old_text` as it was in `new_text`: the same content, and
/// the same ending, where an ending the caller did not choose (see [`restyle`]) equals any.
fn same_line(old: &Line, new: &Line, crlf_chosen: bool) -> bool {
    old.body == new.body
        && match new.eol {
            "" => old.eol.is_empty(),
            "\r\n" if crlf_chosen => old.eol == "\r\n",
            _ => !old.eol.is_empty(),
        }
}

/// The bytes that replace `region` (the file's matched text, as it is in the file; `old` is how
/// the caller wrote it, equal to `region` once line endings are normalized): `new`, with line
/// endings decided line by line.
///
/// * Lines at the start and end of `new` that the caller left as they were in `old` (see
///   [`same_line`]) are written as the region's own bytes: an edit changes only the lines it
///   really changes, so in a mixed file every untouched line keeps its ending.
/// * In the lines that do change, a bare `\n` (what a model writes when it does not think about
///   line endings) takes the style of the lines it replaces, else of the whole region, else of
///   the file ([`line_ending_for`]). A `\r\n` is the caller's choice, written as it is, when
///   `old` has no `\r\n`; when `old` was itself written with `\r\n`, the caller was only writing
///   in the style they assumed, and it is treated like a bare `\n`. A lone `\r` is a line ending
///   only in a classic-Mac file (and then already the file's style); elsewhere it is text.
fn restyle(file: &str, region: &str, old: &str, new: &str, cr_is_newline: bool) -> String {
    let crlf_chosen = !old.contains("\r\n");
    let region_lines = split_lines(region, cr_is_newline);
    let old_lines = split_lines(old, cr_is_newline);
    let new_lines = split_lines(new, cr_is_newline);
    // Normalized, `old` and `region` are equal, so their lines correspond one to one; should they
    // not, nothing is treated as kept.
    let most = if old_lines.len() == region_lines.len() {
        old_lines.len().min(new_lines.len())
    } else {
        0
    };
    let head = old_lines
        .iter()
        .zip(&new_lines)
        .take(most)
        .take_while(|(o, n)| same_line(o, n, crlf_chosen))
        .count();
    let tail = old_lines
        .iter()
        .rev()
        .zip(new_lines.iter().rev())
        .take(most - head)
        .take_while(|(o, n)| same_line(o, n, crlf_chosen))
        .count();
    let head_bytes: usize = region_lines[..head].iter().map(Line::len).sum();
    let tail_bytes: usize = region_lines[region_lines.len() - tail..]
        .iter()
        .map(Line::len)
        .sum();
    let replaced = &region[head_bytes..region.len() - tail_bytes];
    let style = line_ending_for(&[replaced, region, file], cr_is_newline);
    let mut out = String::with_capacity(region.len() + new.len() * 2);
    out.push_str(&region[..head_bytes]);
    for l in &new_lines[head..new_lines.len() - tail] {
        out.push_str(l.body);
        out.push_str(match l.eol {
            "" => "",
            "\r\n" if crlf_chosen => "\r\n",
            _ => style,
        });
    }
    out.push_str(&region[region.len() - tail_bytes..]);
    out
}

/// A UTF-8 byte order mark.
const BOM: char = '\u{feff}';

/// The edit itself, on text: find `old` exactly once and replace it with `new`. Only the
/// replaced text changes: every byte before and after the match is written back as it was.
///
/// Line endings do not count when matching: `\r\n` (and, in a file with no `\n` at all, `\r`)
/// match `\n`, so an `old_text` written with `\n` finds its lines in a CRLF file and vice versa.
/// When the normalized text occurs more than once (a mixed file), an exact byte match that
/// occurs once still picks it.
///
/// Line endings of `new` (see [`restyle`]): only endings the caller chose are written as given.
/// A bare `\n` is written in the style of the lines it replaces (a CRLF file stays CRLF, an LF
/// file stays LF, a mixed file keeps each part's style). A `\r\n` in `new` is the caller's
/// choice and is written as it is, even into an LF file, unless `old` was written with `\r\n`
/// too (then it was only the style the caller assumed, and it is treated like `\n`). Lines that
/// `new` leaves as they were in `old` keep the file's exact bytes.
///
/// A UTF-8 byte order mark at the start of the file is not text: it is ignored when matching (as
/// is one at the start of `old`) and always kept. A BOM at the start of `new` is dropped when
/// `old` started with one or the edit starts at the beginning of a file that has one, so the
/// file never gains a second one; edit_file neither adds nor removes the file's BOM that way.
///
/// When the text is only missing because of whitespace (indentation, tabs, trailing spaces,
/// blank lines, a final newline, a stray `\r`), the error says so and shows the exact lines.
pub fn edit_text(text: &str, old: &str, new: &str, shown: &str) -> Result<String, FileError> {
    let (bom, body) = match text.strip_prefix(BOM) {
        Some(rest) => (&text[..BOM.len_utf8()], rest),
        None => ("", text),
    };
    let old_bom = old.starts_with(BOM);
    let old = old.strip_prefix(BOM).unwrap_or(old);
    if old.is_empty() {
        return Err(if old_bom {
            FileError::BomOnlyOldText
        } else {
            FileError::EmptyOldText
        });
    }
    let cr_is_newline = !body.contains('\n') && body.contains('\r');
    let nt = Normalized::new(body, cr_is_newline);
    let no = Normalized::new(old, cr_is_newline).text;
    let mut found = nt.text.match_indices(no.as_str());
    let Some((s, _)) = found.next() else {
        return Err(not_found(&nt.text, &no, shown));
    };
    let count = found.count() + 1;
    let (start, end) = if count == 1 {
        (nt.orig(s), nt.orig(s + no.len()))
    } else {
        // Ambiguous once line endings are ignored (a mixed file): the exact bytes may still pick
        // one, as long as that match does not split a "\r\n".
        let mut exact = body.match_indices(old);
        match (exact.next(), exact.next()) {
            (Some((s, _)), None) if !splits_crlf(body, s) && !splits_crlf(body, s + old.len()) => {
                (s, s + old.len())
            }
            _ => {
                return Err(FileError::NotUnique {
                    path: shown.into(),
                    count,
                })
            }
        }
    };
    let new = match new.strip_prefix(BOM) {
        Some(rest) if old_bom || (!bom.is_empty() && start == 0) => rest,
        _ => new,
    };
    let replacement = restyle(body, &body[start..end], old, new, cr_is_newline);
    let mut out = String::with_capacity(text.len() - (end - start) + replacement.len());
    out.push_str(bom);
    out.push_str(&body[..start]);
    out.push_str(&replacement);
    out.push_str(&body[end..]);
    Ok(out)
}

/// Whether byte offset `at` falls between the '\r' and the '\n' of a "\r\n".
fn splits_crlf(text: &str, at: usize) -> bool {
    let b = text.as_bytes();
    at > 0 && b.get(at - 1) == Some(&b'\r') && b.get(at) == Some(&b'\n')
}

/// Why `old` (normalized) is not in `text` (normalized): whitespace only, or how close it got.
/// Neither message ever gives a percentage for a miss that is only whitespace or line endings.
fn not_found(text: &str, old: &str, shown: &str) -> FileError {
    if let Some((first, last)) = whitespace_only_match(text, old) {
        return FileError::WhitespaceOnly {
            path: shown.into(),
            first,
            last,
            detail: whitespace_detail(text, old, first, last),
        };
    }
    let closest = if old.chars().all(char::is_whitespace) {
        "old_text is only whitespace and line endings, and the file does not have them like that; \
         include the text around them."
            .to_string()
    } else {
        closest_region(text, old)
    };
    FileError::TextNotFound {
        path: shown.into(),
        closest: lone_cr_note(old) + &closest,
    }
}

/// A hint when `old` (normalized) still holds a `\r`: it is not part of a line ending, which is
/// easy to write by accident (half of a `\r\n`) and invisible in the file's text.
fn lone_cr_note(old: &str) -> String {
    if old.contains('\r') {
        "old_text contains a lone \\r (a carriage return not followed by \\n), which is not a \
         line ending in this file; drop it, or end the line with \\n. "
            .into()
    } else {
        String::new()
    }
}

/// The 1-based lines of `text` that `old` matches once all whitespace is removed from both.
fn whitespace_only_match(text: &str, old: &str) -> Option<(usize, usize)> {
    let squeezed_old: String = old.chars().filter(|c| !c.is_whitespace()).collect();
    if squeezed_old.is_empty() {
        return None;
    }
    let mut squeezed = String::with_capacity(text.len());
    let mut line_starts = vec![0usize];
    for c in text.chars() {
        if c == '\n' {
            line_starts.push(squeezed.len());
        } else if !c.is_whitespace() {
            squeezed.push(c);
        }
    }
    let pos = squeezed.find(&squeezed_old)?;
    let last_byte = pos + squeezed_old.len() - 1;
    let first = line_starts.partition_point(|&s| s <= pos);
    let last = line_starts.partition_point(|&s| s <= last_byte);
    Some((first, last))
}

/// The file's lines `first..=last`, numbered, and the first line where `old` differs from them.
fn whitespace_detail(text: &str, old: &str, first: usize, last: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let region = lines
        .get(first.saturating_sub(1)..last.min(lines.len()))
        .unwrap_or(&[]);
    let old_lines: Vec<&str> = old
        .split('\n')
        .skip_while(|l| l.trim().is_empty())
        .collect();
    let diff = region
        .iter()
        .zip(old_lines.iter())
        .enumerate()
        .find(|(_, (f, o))| f != o);
    let mut s = match diff {
        Some((i, (f, o))) => format!(
            "First difference, line {}: the file has {f:?}, old_text has {o:?}.",
            first + i
        ),
        None => "The lines are the same; old_text differs in blank lines or a final newline."
            .to_string(),
    };
    s.push(' ');
    s.push_str(&lone_cr_note(old));
    s.push_str("The file's text there is:\n");
    for (i, l) in region.iter().enumerate() {
        s.push_str(&format!("{:>6}\t{l}\n", first + i));
    }
    s
}

/// The region of `text` most like `needle`, to show the model what the file really says.
pub fn closest_region(text: &str, needle: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let want: Vec<&str> = needle.lines().collect();
    let n = want.len().max(1);
    if lines.is_empty() {
        return "The file is empty.".into();
    }
    let needle_cmp: String = needle.chars().take(2000).collect();
    let mut best = (0.0f64, 0usize);
    let windows = lines.len().saturating_sub(n) + 1;
    for start in 0..windows.min(5000) {
        let end = (start + n).min(lines.len());
        let cand: String = lines[start..end].join("\n").chars().take(2000).collect();
        let score = strsim::normalized_levenshtein(&cand, &needle_cmp);
        if score > best.0 {
            best = (score, start);
        }
    }
    let (score, start) = best;
    // Never claim 100%: this is only called when the text was not found, and rounding (or the
    // 2000-character cut) must not make a near miss look like an exact match.
    let percent = ((score * 100.0).floor() as u32).min(99);
    if score < 0.3 {
        return "No similar text found; read the file again before editing.".into();
    }
    let end = (start + n).min(lines.len());
    let mut s = format!(
        "The most similar text ({percent}% similar) is at {}:\n",
        line_span(start + 1, end)
    );
    for (i, l) in lines[start..end].iter().enumerate() {
        s.push_str(&format!("{:>6}\t{l}\n", start + 1 + i));
    }
    s
}

pub struct Entry {
    pub name: String,
    pub kind: &'static str,
}

pub fn list_dir(
    ws: &OwnedFd,
    rel: &Path,
    shown: &str,
    lim: Limits,
) -> Result<(Vec<Entry>, u32), FileError> {
    let fd = open_beneath(ws, rel, libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|e| map_errno(e, shown, "open"))?;
    let rd = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| io_err(shown, "read directory", e))?;
    let mut all: Vec<Entry> = vec![];
    for e in rd {
        let e = e.map_err(|e| io_err(shown, "read directory", e))?;
        let kind = match e.file_type() {
            Ok(t) if t.is_dir() => "dir",
            Ok(t) if t.is_file() => "file",
            Ok(t) if t.is_symlink() => "symlink",
            _ => "other",
        };
        all.push(Entry {
            name: e.file_name().to_string_lossy().into_owned(),
            kind,
        });
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let total = all.len() as u32;
    all.truncate(lim.list_max_entries);
    Ok((all, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside_lexically() {
        let ws = Path::new("/srv/ws");
        assert_eq!(relative_path(ws, "a/b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(relative_path(ws, "/srv/ws/a").unwrap(), PathBuf::from("a"));
        assert_eq!(relative_path(ws, "~/a").unwrap(), PathBuf::from("a"));
        assert_eq!(relative_path(ws, "~").unwrap(), PathBuf::new());
        assert_eq!(relative_path(ws, "a/../b").unwrap(), PathBuf::from("b"));
        assert_eq!(relative_path(ws, ".").unwrap(), PathBuf::new());
        for bad in [
            "/srv/ws2/a",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "/srv/ws/../x",
        ] {
            assert_eq!(
                relative_path(ws, bad),
                Err(FileError::Outside(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(relative_path(ws, "a\0b"), Err(FileError::Nul));
    }

    #[test]
    fn closest_region_points_at_the_similar_lines() {
        let text = "fn main() {\n    println!(\"hello\");\n}\n";
        let s = closest_region(text, "    println!(\"helo\");");
        assert!(s.contains("is at line 2:\n"), "{s}");
        assert!(s.contains("println!(\"hello\")"), "{s}");
        let s = closest_region(text, "something entirely different and long enough");
        assert!(s.starts_with("No similar text"), "{s}");
    }

    fn edit(text: &str, old: &str, new: &str) -> Result<String, FileError> {
        edit_text(text, old, new, "f")
    }

    #[test]
    fn crlf_file_matches_lf_old_text_and_stays_crlf() {
        // The reported case: a CRLF file, a two-line old_text written with \n.
        let text = "line one\r\nline two\r\nline three\r\n";
        let out = edit(text, "line one\nline two", "first\nsecond\nthird").unwrap();
        assert_eq!(out, "first\r\nsecond\r\nthird\r\nline three\r\n");
        // new_text written with \r\n is written back the same way.
        let out = edit(text, "line two\n", "2\r\n").unwrap();
        assert_eq!(out, "line one\r\n2\r\nline three\r\n");
        // Exact CRLF old_text still works.
        let out = edit(text, "one\r\nline", "1\nLINE").unwrap();
        assert_eq!(out, "line 1\r\nLINE two\r\nline three\r\n");
        // An old_text starting at a line's \n takes the \r with it: no dangling \r.
        let out = edit(text, "\nline two", "\nTWO").unwrap();
        assert_eq!(out, "line one\r\nTWO\r\nline three\r\n");
    }

    #[test]
    fn lf_file_matches_crlf_old_text_and_stays_lf() {
        let text = "a\nb\nc\n";
        assert_eq!(edit(text, "a\r\nb\r\n", "x\r\ny\r\n").unwrap(), "x\ny\nc\n");
        // A stray \r inside a line of an LF file is not a line ending.
        let text = "progress\r50%\nend\n";
        assert_eq!(edit(text, "progress\r50%", "done").unwrap(), "done\nend\n");
        assert!(matches!(
            edit(text, "progress\n50%", "done"),
            Err(FileError::WhitespaceOnly { .. })
        ));
    }

    #[test]
    fn cr_only_file_matches_and_stays_cr() {
        let text = "one\rtwo\rthree\r";
        assert_eq!(edit(text, "one\ntwo\n", "1\n2\n").unwrap(), "1\r2\rthree\r");
        assert_eq!(edit(text, "two\r\nthree", "x\ny").unwrap(), "one\rx\ry\r");
    }

    #[test]
    fn trailing_newline_differences() {
        // No final newline in the file: a match on the last line works, the edit keeps that.
        let text = "a\r\nb";
        assert_eq!(edit(text, "a\nb", "x\ny").unwrap(), "x\r\ny");
        // old_text ending in a newline the file lacks: whitespace only, said so.
        let e = edit(text, "a\nb\n", "x").unwrap_err();
        let m = e.to_string();
        assert!(
            matches!(
                e,
                FileError::WhitespaceOnly {
                    first: 1,
                    last: 2,
                    ..
                }
            ),
            "{m}"
        );
        assert!(m.contains("blank lines or a final newline"), "{m}");
        assert!(!m.contains("100%"), "{m}");
        // A trailing newline in the file is kept when old_text stops before it.
        assert_eq!(edit("a\r\nb\r\n", "a\nb", "c").unwrap(), "c\r\n");
    }

    #[test]
    fn mixed_files_follow_the_region_then_the_majority() {
        // Region has CRLF: the new lines are CRLF.
        let text = "a\r\nb\r\nc\nd\n";
        assert_eq!(edit(text, "a\nb", "1\n2").unwrap(), "1\r\n2\r\nc\nd\n");
        // Region has LF: the new lines are LF.
        assert_eq!(edit(text, "c\nd", "3\n4").unwrap(), "a\r\nb\r\n3\n4\n");
        // No line ending in the region: the file's majority (a tie goes to LF).
        assert_eq!(edit(text, "c", "5\n6").unwrap(), "a\r\nb\r\n5\n6\nd\n");
        let text = "a\r\nb\r\nc\n";
        assert_eq!(edit(text, "c", "5\n6").unwrap(), "a\r\nb\r\n5\r\n6\n");
        // Ambiguous once endings are ignored, but the exact bytes pick one.
        let text = "x\r\ny\nx\ny\n";
        assert_eq!(edit(text, "x\ny", "z").unwrap(), "x\r\ny\nz\n");
        assert_eq!(edit(text, "x\r\ny", "z").unwrap(), "z\nx\ny\n");
        assert_eq!(
            edit("x\r\ny\nx\r\ny\n", "x\ny", "z"),
            Err(FileError::NotUnique {
                path: "f".into(),
                count: 2
            })
        );
    }

    #[test]
    fn whitespace_only_mismatch_says_so() {
        let text = "def f():\r\n\treturn 1\r\n\r\ndef g():\r\n    pass\r\n";
        let e = edit(text, "def f():\n    return 1\n", "x").unwrap_err();
        let m = e.to_string();
        assert!(
            matches!(
                e,
                FileError::WhitespaceOnly {
                    first: 1,
                    last: 2,
                    ..
                }
            ),
            "{m}"
        );
        assert!(
            m.contains("matches lines 1-2 if whitespace is ignored"),
            "{m}"
        );
        assert!(m.contains("line endings are already ignored"), "{m}");
        assert!(
            m.contains(r#"line 2: the file has "\treturn 1", old_text has "    return 1""#),
            "{m}"
        );
        assert!(m.contains("     2\t\treturn 1\n"), "{m}");
        assert!(!m.contains('%'), "{m}");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    }

    #[test]
    fn not_found_never_claims_100_percent() {
        // Differs past the 2000-character comparison window: once reported as 100% similar.
        let long = "x".repeat(2500);
        let text = format!("{long}a\n");
        let e = edit(&text, &format!("{long}b"), "y").unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, FileError::TextNotFound { .. }), "{m}");
        assert!(m.contains("99% similar"), "{m}");
        // A one-character typo in a long line rounds to 100% without the cap.
        let line = "y".repeat(300);
        let m = edit(&format!("{line}\n"), &format!("{}z", &line[1..]), "q")
            .unwrap_err()
            .to_string();
        assert!(m.contains("most similar text (99% similar)"), "{m}");
        assert!(!m.contains("100%"), "{m}");
    }

    #[test]
    fn crlf_the_caller_wrote_is_kept_bare_lf_follows_the_file() {
        // An LF file: a \r\n in new_text was chosen, and is written as it is...
        let text = "a\nb\nc\n";
        assert_eq!(edit(text, "b", "p\r\nq").unwrap(), "a\np\r\nq\nc\n");
        assert_eq!(edit(text, "a\nb", "x\r\ny").unwrap(), "x\r\ny\nc\n");
        // A caller who wrote old_text with \r\n too only assumed the file was CRLF: its \r\n in
        // new_text is no choice, and the file stays LF.
        assert_eq!(edit(text, "a\r\nb\r\n", "x\r\ny\r\n").unwrap(), "x\ny\nc\n");
        // ...while its bare \n, in the same new_text, still takes the file's style.
        assert_eq!(edit(text, "b\n", "p\r\nq\n").unwrap(), "a\np\r\nq\nc\n");
        // A CRLF file: bare \n becomes \r\n, a written \r\n stays, so both give CRLF.
        let text = "a\r\nb\r\nc\r\n";
        assert_eq!(
            edit(text, "b\n", "p\r\nq\nr\n").unwrap(),
            "a\r\np\r\nq\r\nr\r\nc\r\n"
        );
        // A classic-Mac file: bare \n becomes \r; a written \r\n stays.
        assert_eq!(edit("a\rb\r", "a", "x\ny\r\nz").unwrap(), "x\ry\r\nz\rb\r");
        // A lone \r in new_text is not a line ending outside a classic-Mac file: kept as is.
        assert_eq!(edit("a\nb\n", "a", "x\ry").unwrap(), "x\ry\nb\n");
    }

    #[test]
    fn an_edit_changes_only_the_lines_it_changes() {
        // Mixed endings; old_text spans most of the file and new_text changes one line.
        let text = "one\r\ntwo\nthree\r\nfour\nfive\r\nsix\n";
        let out = edit(
            text,
            "one\ntwo\nthree\nfour\nfive\n",
            "one\ntwo\nTHREE\nfour\nfive\n",
        )
        .unwrap();
        assert_eq!(out, "one\r\ntwo\nTHREE\r\nfour\nfive\r\nsix\n");
        // Every byte outside the changed line is the file's.
        let at = text.find("three").unwrap();
        assert_eq!(out[..at], text[..at]);
        assert_eq!(out[at + 5..], text[at + 5..]);
        // The same with old_text written in CRLF throughout, and with the LF line changed.
        let out = edit(
            text,
            "one\r\ntwo\r\nthree\r\nfour\r\n",
            "one\r\nTWO\r\nthree\r\nfour\r\n",
        )
        .unwrap();
        assert_eq!(out, "one\r\nTWO\nthree\r\nfour\nfive\r\nsix\n");
        // A \r\n chosen for one kept line changes just that line's ending.
        let out = edit(text, "one\ntwo\nthree\n", "one\ntwo\r\nthree\n").unwrap();
        assert_eq!(out, "one\r\ntwo\r\nthree\r\nfour\nfive\r\nsix\n");
        // A line inserted between kept lines takes the style of the file (here a tie: LF).
        let out = edit(text, "two\nthree", "two\nnew\nthree").unwrap();
        assert_eq!(out, "one\r\ntwo\nnew\nthree\r\nfour\nfive\r\nsix\n");
        // Replaced lines take the style of the lines they replace, not the region's majority.
        let text = "a\r\nb\r\nc\nd\r\n";
        let out = edit(text, "a\nb\nc\nd\n", "a\nb\nC\nC2\nd\n").unwrap();
        assert_eq!(out, "a\r\nb\r\nC\nC2\nd\r\n");
        // Deleting a line keeps the others' bytes.
        let out = edit(text, "b\nc\nd", "b\nd").unwrap();
        assert_eq!(out, "a\r\nb\r\nd\r\n");
        // A last line without an ending stays without one.
        let out = edit("x\r\ny\nz", "y\nz", "Y\nz").unwrap();
        assert_eq!(out, "x\r\nY\nz");
    }

    #[test]
    fn a_bom_is_ignored_when_matching_and_always_kept() {
        let text = "\u{feff}first\r\nsecond\r\n";
        // old_text with the BOM (new_text copied it too): one BOM, CRLF kept.
        let out = edit(text, "\u{feff}first\n", "\u{feff}1st\n").unwrap();
        assert_eq!(out, "\u{feff}1st\r\nsecond\r\n");
        // old_text with the BOM, new_text without: the BOM stays.
        assert_eq!(
            edit(text, "\u{feff}first", "1st").unwrap(),
            "\u{feff}1st\r\nsecond\r\n"
        );
        // old_text without it, new_text with it: still one BOM.
        assert_eq!(
            edit(text, "first", "\u{feff}1st").unwrap(),
            "\u{feff}1st\r\nsecond\r\n"
        );
        // Plain first-line and whole-file edits keep it.
        assert_eq!(
            edit(text, "first\nsecond\n", "only\n").unwrap(),
            "\u{feff}only\r\n"
        );
        // No BOM in the file: an old_text BOM is ignored and none is added by copying it...
        assert_eq!(edit("a\nb\n", "\u{feff}a", "\u{feff}x").unwrap(), "x\nb\n");
        // ...but one written at the start of new_text alone is the caller's and is kept.
        assert_eq!(edit("a\nb\n", "a", "\u{feff}x").unwrap(), "\u{feff}x\nb\n");
        // A BOM is never a match for whitespace, and a BOM alone is no old_text.
        assert_eq!(edit(text, "\u{feff}", "x"), Err(FileError::BomOnlyOldText));
        assert!(matches!(
            edit(text, "\u{feff}first\nsecond\n\n", "x"),
            Err(FileError::WhitespaceOnly { first: 1, .. })
        ));
    }

    #[test]
    fn a_lone_cr_miss_is_explained_and_never_100_percent() {
        for (text, old) in [
            ("a\r\nb\r\n", "a\r"),
            ("a\nb\n", "a\r"),
            ("a\r\nb\r\n", "a\nb\r"),
            ("alpha beta\r\ngamma\r\n", "alpha beta\r\r\ngamma"),
            ("a\nb\n", "a\n\r"),
        ] {
            let e = edit(text, old, "x").unwrap_err();
            let m = e.to_string();
            assert!(matches!(e, FileError::WhitespaceOnly { .. }), "{m}");
            assert!(m.contains("lone \\r"), "{old:?}: {m}");
            assert!(!m.contains('%'), "{old:?}: {m}");
            assert!(!m.contains("lines 1-1"), "{old:?}: {m}");
        }
        // Only whitespace, and not in the file like that: said, without a similarity.
        for old in ["\r", " \t", "\r\r"] {
            let e = edit("a\nb\n", old, "x").unwrap_err();
            let m = e.to_string();
            assert!(matches!(e, FileError::TextNotFound { .. }), "{m}");
            assert!(
                m.contains("only whitespace and line endings"),
                "{old:?}: {m}"
            );
            assert!(!m.contains('%'), "{old:?}: {m}");
        }
        // A real miss with a lone \r: the hint, and at most 99%.
        let m = edit("alpha beta gamma\n", "alpha beta gamme\r", "x")
            .unwrap_err()
            .to_string();
        assert!(m.contains("lone \\r") && m.contains("% similar"), "{m}");
        assert!(!m.contains("100%"), "{m}");
    }

    #[test]
    fn messages_count_in_the_singular_for_one() {
        let m = edit("a\nb\n", "  a", "x").unwrap_err().to_string();
        assert!(m.contains("matches line 1 if whitespace"), "{m}");
        let m = closest_region("abc\ndef\n", "abd");
        assert!(m.contains("is at line 1:\n"), "{m}");
        let m = closest_region("abc\ndef\n", "abc\ndeg");
        assert!(m.contains("is at lines 1-2:\n"), "{m}");
        let e = FileError::Offset {
            path: "f".into(),
            offset: 5,
            lines: 1,
        };
        assert!(e.to_string().ends_with("(1 line)"), "{e}");
        let e = FileError::TooLarge {
            path: "f".into(),
            size: 1,
            limit: 0,
            hint: "h",
        };
        assert!(e.to_string().contains("(1 byte, the limit is 0)"), "{e}");
        let e = FileError::TooLarge {
            path: "f".into(),
            size: 2,
            limit: 1,
            hint: "h",
        };
        assert!(e.to_string().contains("(2 bytes, the limit is 1)"), "{e}");
    }

    #[test]
    fn error_codes_match_what_a_model_can_act_on() {
        assert_eq!(
            FileError::Outside("x".into()).code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            FileError::NotFound("x".into()).code(),
            tonic::Code::NotFound
        );
        assert!(FileError::Outside("../x".into())
            .to_string()
            .contains("outside the workspace"));
    }
}
