//! The sandbox's root for this request: the warm one when it was built from the same plan, else
//! built now (`rootfs` executes the `confine::mounts` plan); the workspace bound in; sealed. Then
//! the command's working directory, opened beneath the workspace.

use super::prepare::Prepared;
use crate::confine::mounts::MountPlan;
use crate::policy::SandboxSpec;
use crate::step::StepError;
use crate::vocab::Layer;
use std::io;
use std::os::fd::OwnedFd;

/// Whether a root already built from `built` serves a request for `wanted` (the warm-reuse rule
/// for the root: the very same plan).
pub(super) fn warm_root_fits(built: Option<&MountPlan>, wanted: &MountPlan) -> bool {
    built == Some(wanted)
}

/// Build (or reuse) the root of `spec`, bind the workspace the daemon handed over into it and
/// seal it. Returns the workspace as mounted inside the root.
pub(super) fn build(
    prepared: &mut Prepared,
    spec: &SandboxSpec,
    handed_workspace: &OwnedFd,
) -> Result<OwnedFd, StepError> {
    let stage = &mut prepared.stage;
    if !warm_root_fits(prepared.mounts.as_ref(), &spec.mounts) {
        if prepared.mounts.take().is_some() {
            stage.rebuild(&spec.mounts)?;
            // Its rules name the root just discarded.
            prepared.landlock = None;
        } else {
            stage.build(&spec.mounts)?;
        }
    }
    let workspace = stage
        .bind_workspace(&spec.workspace, handed_workspace, spec.fs.workspace_writable)?
        .ok_or_else(|| StepError::new(
            Layer::Mounts,
            "open workspace",
            libc::EACCES,
            format!("workspace {} is not reachable by the sandbox user (a parent directory is not searchable); place it where that user can traverse", spec.workspace.display()),
        ))?;
    stage.seal(&spec.mounts)?;
    Ok(workspace)
}

/// The command's working directory, resolved again beneath the workspace: the kernel re-checks
/// that it stays inside, whatever changed since the daemon looked.
pub(super) fn open_cwd(workspace: &OwnedFd, spec: &SandboxSpec) -> Result<OwnedFd, StepError> {
    crate::workspace::open_beneath(workspace, &spec.cwd, libc::O_PATH | libc::O_DIRECTORY).map_err(
        |errno| {
            StepError::io(
                Layer::Mounts,
                "open cwd",
                io::Error::from_raw_os_error(errno),
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_root_serves_only_its_own_plan() {
        let a = MountPlan::default();
        let mut b = MountPlan::default();
        b.ops.push(crate::confine::mounts::MountOp::Proc {
            path: "/proc".into(),
        });
        assert!(warm_root_fits(Some(&a), &a));
        assert!(warm_root_fits(Some(&b), &b.clone()));
        assert!(!warm_root_fits(Some(&a), &b));
        assert!(!warm_root_fits(Some(&b), &a));
        // A cold sandbox has no root yet.
        assert!(!warm_root_fits(None, &a));
    }
}
