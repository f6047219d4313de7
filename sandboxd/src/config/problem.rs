//! A problem of the configuration, located at FILE:LINE: KEY, and the error that carries them all.

use std::path::PathBuf;

/// One thing wrong with the configuration, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Dotted key (`profiles.build.limits.processes`); empty when the file itself is broken.
    pub key: String,
    pub msg: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.msg)
        } else {
            write!(f, ": {}: {}", self.key, self.msg)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Problems(Vec<Problem>),
}

impl ConfigError {
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Problems(p) => p.iter().map(|p| p.to_string()).collect(),
            other => vec![other.to_string()],
        }
    }
}
