//! A sandbox setup failure as the sandboxed side reports it: which layer, which step, which
//! errno. Every function that builds a sandbox returns this, and the daemon turns it into the
//! result's `refused_layer` (and `refused_layer_kind`), `failed_step` and `errno`.

use crate::vocab::Layer;
use crate::wire::Report;
use std::io;

/// A setup failure: which layer, which step, which errno.
#[derive(Debug)]
pub struct StepError {
    pub layer: Layer,
    pub step: String,
    pub errno: i32,
    pub message: String,
}

impl StepError {
    /// The step failed with the calling thread's errno.
    pub fn os(layer: Layer, step: impl Into<String>) -> StepError {
        Self::io(layer, step, io::Error::last_os_error())
    }

    pub fn io(layer: Layer, step: impl Into<String>, e: io::Error) -> StepError {
        let step = step.into();
        StepError {
            layer,
            errno: e.raw_os_error().unwrap_or(0),
            message: format!("{step}: {e}"),
            step,
        }
    }

    /// A failure with its own explanation (the errno is what a caller would test on).
    pub fn new(
        layer: Layer,
        step: impl Into<String>,
        errno: i32,
        message: impl Into<String>,
    ) -> StepError {
        StepError {
            layer,
            step: step.into(),
            errno,
            message: message.into(),
        }
    }

    pub fn landlock(e: crate::confine::landlock::LandlockError, step: &str) -> StepError {
        StepError {
            layer: Layer::Landlock,
            step: step.into(),
            errno: e.errno(),
            message: e.to_string(),
        }
    }

    pub fn report(self) -> Report {
        Report::Failed {
            layer: self.layer,
            step: self.step,
            errno: self.errno,
            message: self.message,
        }
    }
}

/// A negative syscall return as a StepError of `layer`.
pub fn check(r: libc::c_int, layer: Layer, step: &str) -> Result<(), StepError> {
    if r < 0 {
        Err(StepError::os(layer, step))
    } else {
        Ok(())
    }
}
