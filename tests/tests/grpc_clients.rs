//! Any standard gRPC client works with sandboxd's Unix socket, with its own defaults.

use nanobot_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv `scripts/test.sh` fills with grpcio from PyPI.
fn grpcio_python() -> PathBuf {
    let p = std::env::var_os("NANOBOT_TEST_GRPCIO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/grpcio-venv/bin/python")
        });
    let ok = Command::new(&p)
        .args(["-c", "import grpc, grpc_tools, grpc_health"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import grpcio: run ./scripts/test.sh, which installs it (grpcio, grpcio-tools, \
         grpcio-health-checking from PyPI) into target/grpcio-venv",
        p.display()
    );
    p
}

/// grpcio names a `unix:` target's authority after its path (`tmp%2F…%2Fsandboxd.sock`), which
/// h2 refuses: before, every call ended in `RST_STREAM` with PROTOCOL_ERROR unless the client set
/// `grpc.default_authority`. Now Health, Exec and ReadFile answer, several calls share one
/// connection, and the workspace still holds.
#[test]
fn grpcio_with_its_default_authority_calls_health_exec_and_read_file() {
    let python = grpcio_python();
    let d = Daemon::start();
    std::fs::write(d.ws.join("hello.txt"), "hello\n").unwrap();
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/proto");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/grpcio_client.py");
    let o = Command::new(&python)
        .arg(&script)
        .arg(&proto)
        .arg(&d.socket)
        .arg(&d.ws)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let uid = test_ids().0;
    assert_eq!(
        out,
        format!(
            "health SERVING\n\
             exec stdout='hi from uid {uid}\\n' exit=3\n\
             read_file 0 content='hello\\n'\n\
             read_file 1 content='hello\\n'\n\
             read_file 2 content='hello\\n'\n\
             read_file outside: PERMISSION_DENIED\n\
             read_file not UTF-8: INVALID_ARGUMENT True\n"
        )
    );
}
