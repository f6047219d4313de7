//! The `nanobot.sandbox.v1` contract shared by the agent (client) and sandboxd (server).

pub mod sandbox {
    pub mod v1 {
        tonic::include_proto!("nanobot.sandbox.v1");
    }
}

pub use sandbox::v1 as pb;
