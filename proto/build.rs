// Compiles the contract with protox (pure Rust), so building never needs a system `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/nanobot/sandbox/v1/sandbox.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Bad input is INVALID_ARGUMENT, not INTERNAL (see src/codec.rs).
        .codec_path("crate::codec::ContractCodec")
        .compile_fds(fds)?;
    Ok(())
}
