"""An off-the-shelf gRPC client (grpcio from PyPI) against sandboxd, with grpcio's defaults.

Usage: grpcio_client.py PROTO_ROOT SOCKET WORKSPACE
Generates the stubs from the .proto contract, then calls Health, Exec and ReadFile over
`unix:SOCKET` without setting `grpc.default_authority`, and prints one line per check. Exits
non-zero on the first check that fails.
"""
import importlib
import os
import sys
import tempfile

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

proto_root, socket, workspace = sys.argv[1:4]
out = tempfile.mkdtemp(prefix="nanobot-grpcio-")
rel = "nanobot/sandbox/v1/sandbox.proto"
if protoc.main(["protoc", "-I" + proto_root, "--python_out=" + out, "--grpc_python_out=" + out, rel]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, out)
pb = importlib.import_module("nanobot.sandbox.v1.sandbox_pb2")
stubs = importlib.import_module("nanobot.sandbox.v1.sandbox_pb2_grpc")

channel = grpc.insecure_channel("unix:" + socket)

health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
assert health.status == health_pb2.HealthCheckResponse.SERVING, health
print("health SERVING")

sandbox = stubs.SandboxStub(channel)
stdout, result = b"", None
for ev in sandbox.Exec(pb.ExecRequest(workspace=workspace, command="echo hi from uid $(id -u); exit 3"), timeout=30):
    kind = ev.WhichOneof("event")
    if kind == "stdout":
        stdout += ev.stdout
    elif kind == "result":
        result = ev.result
assert result is not None, "no result"
print("exec stdout=%r exit=%d" % (stdout.decode(), result.exit_code))

# Several requests on one connection: the HPACK tables stay in step.
for i in range(3):
    r = sandbox.ReadFile(pb.ReadFileRequest(workspace=workspace, path="hello.txt"), timeout=10)
    print("read_file %d content=%r" % (i, r.content))

try:
    sandbox.ReadFile(pb.ReadFileRequest(workspace=workspace, path="../../etc/passwd"), timeout=10)
    sys.exit("reading outside the workspace succeeded")
except grpc.RpcError as e:
    print("read_file outside: %s" % e.code().name)

# A path that is not UTF-8 (protobuf strings must be): the sender's bad input, not INTERNAL.
raw = channel.unary_unary(
    "/nanobot.sandbox.v1.Sandbox/ReadFile",
    request_serializer=lambda b: b,
    response_deserializer=lambda b: b,
)
ws = workspace.encode()
message = bytes([0x0A, len(ws)]) + ws + bytes([0x12, 0x02, 0xFF, 0xFE]) if len(ws) < 128 else None
assert message is not None, "workspace path too long for the hand-made message"
try:
    raw(message, timeout=10)
    sys.exit("a path that is not UTF-8 was accepted")
except grpc.RpcError as e:
    print("read_file not UTF-8: %s %s" % (e.code().name, "UTF-8" in e.details()))
