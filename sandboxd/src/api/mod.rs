//! The gRPC service: thin tonic handlers over `admit` (exec admission), `files` (file calls),
//! `info` (Info) and `peer` (credentials and the interceptor); `state` holds the daemon state and
//! config snapshot they share.

mod admit;
pub mod authority;
pub mod conns;
mod files;
pub mod in_flight;
mod info;
mod peer;
mod state;

pub use admit::{build_spec, resolve_cwd, MAX_CWD_BYTES};
pub use info::info;
pub use peer::{authenticate, peer_info, peer_of, PeerConn, PeerInfo, Refused};
pub use state::{ConfigSnapshot, State};

use crate::exec_session::{self, ExecParams, Outcome};
use crate::fileops;
use files::FileOp;
use nanobot_proto::pb::{
    exec_event::Event, sandbox_server::Sandbox, DirEntry, EditFileRequest, EditFileResponse,
    ExecEvent, ExecRequest, InfoRequest, InfoResponse, ListDirRequest, ListDirResponse,
    ReadFileRequest, ReadFileResponse, WriteFileRequest, WriteFileResponse,
};
use peer::split;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct Service(pub Arc<State>);

#[tonic::async_trait]
impl Sandbox for Service {
    type ExecStream = ReceiverStream<Result<ExecEvent, Status>>;

    async fn exec(&self, req: Request<ExecRequest>) -> Result<Response<Self::ExecStream>, Status> {
        let state = self.0.clone();
        let ((peer, gids), req) = split(req);
        let admitted = match admit::admit(&state, peer, &gids, &req)? {
            admit::Admission::Run(a) => *a,
            admit::Admission::Blocked(r) => {
                let (tx, rx) = mpsc::channel(1);
                let _ = tx
                    .send(Ok(ExecEvent {
                        event: Some(Event::Result(*r)),
                    }))
                    .await;
                return Ok(Response::new(ReceiverStream::new(rx)));
            }
        };
        let admit::Admitted {
            spec,
            output_cap,
            profile: pname,
            workspace,
            ws_fd,
            cwd_log,
            permit,
            slot,
        } = admitted;

        let (tx, rx) = mpsc::channel(32);
        let command = if req.command.is_empty() {
            req.argv.join(" ")
        } else {
            req.command.clone()
        };
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            let t0 = Instant::now();
            let params = ExecParams {
                spec,
                workspace_fd: ws_fd,
                output_cap,
                profile: pname.clone(),
                cgroups: state.cgroups.clone(),
            };
            let outcome = exec_session::run(
                state.launcher.clone(),
                params,
                tx.clone(),
                state.shutdown.clone(),
            )
            .await;
            let ws = workspace.display().to_string();
            let ms = t0.elapsed().as_millis() as u64;
            match outcome {
                Outcome::Done(r) => {
                    if r.refused {
                        tracing::error!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, cwd = %cwd_log, profile = %pname, command = %command, refused_layer = %r.refused_layer, step = %r.failed_step, errno = r.errno, duration_ms = ms, "exec refused: {}", r.refused_reason);
                    } else if !r.degraded.is_empty() {
                        tracing::warn!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, cwd = %cwd_log, profile = %pname, command = %command, exit_code = r.exit_code, signal = r.signal, timed_out = r.timed_out, degraded = ?r.degraded, duration_ms = ms, "exec finished DEGRADED");
                    } else {
                        tracing::info!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, cwd = %cwd_log, profile = %pname, command = %command, exit_code = r.exit_code, signal = r.signal, timed_out = r.timed_out, stdout_truncated = r.stdout_truncated, stderr_truncated = r.stderr_truncated, duration_ms = ms, "exec finished");
                    }
                    let _ = tx
                        .send(Ok(ExecEvent {
                            event: Some(Event::Result(*r)),
                        }))
                        .await;
                }
                Outcome::Unavailable(why) => {
                    tracing::error!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, profile = %pname, command = %command, duration_ms = ms, "exec not run: {why}");
                    let _ = tx.send(Err(Status::unavailable(why))).await;
                }
                Outcome::ClientGone => {
                    tracing::warn!(op = "exec", peer_uid = peer.uid, peer_pid = peer.pid, workspace = %ws, profile = %pname, command = %command, duration_ms = ms, "client disconnected; sandbox killed");
                }
                Outcome::Shutdown => {
                    tracing::warn!(op = "exec", peer_uid = peer.uid, workspace = %ws, command = %command, duration_ms = ms, "sandboxd shutting down; sandbox killed");
                    let _ = tx
                        .send(Err(Status::unavailable(
                            "sandboxd is shutting down; the command was killed",
                        )))
                        .await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn read_file(
        &self,
        req: Request<ReadFileRequest>,
    ) -> Result<Response<ReadFileResponse>, Status> {
        let (peer, r) = split(req);
        let op = FileOp::start(&self.0, "read_file", peer, &r.workspace, &r.path)?;
        let lim = self.0.limits();
        op.run(move |ws, _ws_path, rel, shown| {
            let o = fileops::read_file(ws, rel, shown, r.offset, r.limit, lim)?;
            Ok(ReadFileResponse {
                content: o.content,
                truncated: o.truncated,
                note: o.note,
                total_lines: o.total_lines,
                path: rel.display().to_string(),
            })
        })
        .await
    }

    async fn write_file(
        &self,
        req: Request<WriteFileRequest>,
    ) -> Result<Response<WriteFileResponse>, Status> {
        let (peer, r) = split(req);
        let op = FileOp::start(&self.0, "write_file", peer, &r.workspace, &r.path)?;
        let lim = self.0.limits();
        let ws_bytes = self.0.default_workspace_bytes();
        op.run(move |ws, ws_path, rel, shown| {
            let lim = State::write_limits(lim, ws_bytes, ws);
            let o = fileops::write_file(ws, ws_path, rel, shown, &r.content, lim)?;
            Ok(WriteFileResponse {
                bytes_written: o.bytes,
                created: o.created,
                path: rel.display().to_string(),
            })
        })
        .await
    }

    async fn edit_file(
        &self,
        req: Request<EditFileRequest>,
    ) -> Result<Response<EditFileResponse>, Status> {
        let (peer, r) = split(req);
        let op = FileOp::start(&self.0, "edit_file", peer, &r.workspace, &r.path)?;
        let lim = self.0.limits();
        let ws_bytes = self.0.default_workspace_bytes();
        op.run(move |ws, ws_path, rel, shown| {
            let lim = State::write_limits(lim, ws_bytes, ws);
            let n = fileops::edit_file(ws, ws_path, rel, shown, &r.old_text, &r.new_text, lim)?;
            Ok(EditFileResponse {
                path: rel.display().to_string(),
                bytes_written: n,
            })
        })
        .await
    }

    async fn list_dir(
        &self,
        req: Request<ListDirRequest>,
    ) -> Result<Response<ListDirResponse>, Status> {
        let (peer, r) = split(req);
        let op = FileOp::start(&self.0, "list_dir", peer, &r.workspace, &r.path)?;
        let lim = self.0.limits();
        op.run(move |ws, _ws_path, rel, shown| {
            let (entries, total) = fileops::list_dir(ws, rel, shown, lim)?;
            Ok(ListDirResponse {
                truncated: (entries.len() as u32) < total,
                total,
                path: rel.display().to_string(),
                entries: entries
                    .into_iter()
                    .map(|e| DirEntry {
                        is_dir: e.kind == "dir",
                        name: e.name,
                        kind: e.kind.into(),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(info(
            &self.0.snapshot().cfg,
            &self.0.cgroups,
            &self.0.at_start,
        )))
    }
}
