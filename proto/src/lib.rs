//! The `nanobot.sandbox.v1` contract shared by the agent (client) and sandboxd (server).

pub mod sandbox {
    // Generated code: `ExecEvent.event` carries one large `result` (with the output tails) among
    // small chunks; it is sent once per exec, so boxing it would buy nothing.
    #[allow(clippy::large_enum_variant)]
    pub mod v1 {
        tonic::include_proto!("nanobot.sandbox.v1");
    }
}

pub mod codec;

pub use sandbox::v1 as pb;
