//! gRPC client for sandboxd over its Unix socket.

use hyper_util::rt::TokioIo;
use nanobot_proto::pb::sandbox_client::SandboxClient;
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
