//! `grpc.health.v1.Health` for the daemon: one status, SERVING while there is a launcher, for the
//! whole server (`""`) and for `nanobot.sandbox.v1.Sandbox`.
//!
//! Unlike tonic-health's reporter, whose Watch streams report only the latest status (a
//! launcher replaced within a millisecond would never show as NOT_SERVING), every change goes to
//! every watcher in order, as the Health protocol says ("a new message whenever the service's
//! serving status changes"). At shutdown the watchers get the last status, then their streams
//! end, so that their connections can close.

use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, watch};
use tonic::{Request, Response, Status};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_server, HealthCheckRequest, HealthCheckResponse,
};

/// The services this daemon reports on.
const SERVICES: [&str; 2] = ["", "nanobot.sandbox.v1.Sandbox"];

#[derive(Clone)]
pub struct Health(Arc<Inner>);

struct Inner {
    up: Mutex<bool>,
    changes: broadcast::Sender<bool>,
    shutdown: watch::Receiver<bool>,
}

impl Health {
    /// SERVING at first; watch streams end once `shutdown` turns true.
    pub fn new(shutdown: watch::Receiver<bool>) -> Health {
        Health(Arc::new(Inner {
            up: Mutex::new(true),
            changes: broadcast::channel(64).0,
            shutdown,
        }))
    }

    pub fn set(&self, up: bool) {
        let mut cur = self.0.up.lock().unwrap_or_else(|e| e.into_inner());
        if *cur != up {
            *cur = up;
            // Sent under the lock: a watcher's first status and its changes stay in order.
            let _ = self.0.changes.send(up);
        }
    }

    fn current(&self) -> bool {
        *self.0.up.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn server(&self) -> health_server::HealthServer<Health> {
        health_server::HealthServer::new(self.clone())
    }
}

fn known(service: &str) -> bool {
    SERVICES.contains(&service)
}

fn response(up: bool) -> HealthCheckResponse {
    let status = if up {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    HealthCheckResponse {
        status: status.into(),
    }
}

#[tonic::async_trait]
impl health_server::Health for Health {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if !known(&request.get_ref().service) {
            return Err(Status::not_found(format!(
                "no such service: {}",
                crate::shown::shown(&request.get_ref().service)
            )));
        }
        Ok(Response::new(response(self.current())))
    }

    type WatchStream = tokio_stream::wrappers::ReceiverStream<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (out, stream) = mpsc::channel(16);
        if !known(&request.get_ref().service) {
            let unknown = HealthCheckResponse {
                status: ServingStatus::ServiceUnknown.into(),
            };
            // The call stays open (as the protocol says) until shutdown or the client leaves.
            let mut shutdown = self.0.shutdown.clone();
            tokio::spawn(async move {
                if out.send(Ok(unknown)).await.is_ok() {
                    tokio::select! {
                        _ = shutdown.wait_for(|s| *s) => {}
                        _ = out.closed() => {}
                    }
                }
            });
            return Ok(Response::new(stream.into()));
        }
        let (first, mut changes) = {
            let cur = self.0.up.lock().unwrap_or_else(|e| e.into_inner());
            (*cur, self.0.changes.subscribe())
        };
        let me = self.clone();
        let mut shutdown = self.0.shutdown.clone();
        tokio::spawn(async move {
            if out.send(Ok(response(first))).await.is_err() {
                return;
            }
            loop {
                // Changes first: the NOT_SERVING sent before shutdown reaches the watcher.
                let up = tokio::select! {
                    biased;
                    c = changes.recv() => match c {
                        Ok(up) => up,
                        Err(broadcast::error::RecvError::Lagged(_)) => me.current(),
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = shutdown.wait_for(|s| *s) => return,
                    _ = out.closed() => return,
                };
                if out.send(Ok(response(up))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(stream.into()))
    }
}
