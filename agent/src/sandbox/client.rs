//! gRPC client for sandboxd over its Unix socket: connect, and ask whether a socket answers.

use hyper_util::rt::TokioIo;
use nanobot_proto::pb::sandbox_client::SandboxClient;
use nanobot_proto::pb::{InfoRequest, InfoResponse};
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint};

pub type Client = SandboxClient<Channel>;

pub async fn connect(socket: &Path) -> Result<Client, tonic::transport::Error> {
    let path: PathBuf = socket.to_path_buf();
    // The URI is required by the API but unused: the connector always dials the socket.
    let channel = Endpoint::from_static("http://sandboxd.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let p = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
            }
        }))
        .await?;
    Ok(SandboxClient::new(channel).max_decoding_message_size(8 << 20))
}

/// Whether a sandboxd answers `Info` on `socket`.
pub async fn answers(socket: &Path) -> bool {
    if !socket.exists() {
        return false;
    }
    match connect(socket).await {
        Ok(mut c) => c.info(InfoRequest {}).await.is_ok(),
        Err(_) => false,
    }
}

/// What the sandboxd on `socket` says about itself, if it answers.
pub async fn info(socket: &Path) -> Option<InfoResponse> {
    let mut c = connect(socket).await.ok()?;
    c.info(InfoRequest {}).await.ok().map(|r| r.into_inner())
}
