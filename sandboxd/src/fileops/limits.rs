//! The file tools' caps: from the config, and the size above which a file is never loaded whole.

/// Caps, from the config.
#[derive(Debug, Clone, Copy)]
pub struct FileLimits {
    pub read_max_chars: usize,
    pub write_max_bytes: usize,
    pub list_max_entries: usize,
    /// The workspace's ceiling (`limits.workspace_bytes`) that write_file and edit_file check
    /// themselves (`usage`): Some under the write budget, None where the filesystem holds it.
    pub workspace_ceiling: Option<u64>,
}

/// Files larger than this are never loaded whole; use exec with head/sed/grep instead.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
