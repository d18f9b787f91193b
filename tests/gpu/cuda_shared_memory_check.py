"""Checks coalesce's CUDA shared-memory extension against a running CUDA build of the server.

Exports device memory from this process with PyTorch's CUDA IPC support
(untyped_storage()._share_cuda_() gives the cudaIpcMemHandle_t bytes of the allocation that
holds a tensor, and the tensor's offset in it), registers it with CudaSharedMemoryRegister, runs
the demo model with its input read from and its output written to that memory, and compares the
output with the same request sent through the socket. Then the refusals: a garbage handle, a
byte_size past the allocation, an unknown region after unregistering.

    python3 tests/gpu/cuda_shared_memory_check.py --address=127.0.0.1:8001

Needs torch with CUDA, grpcio and protobuf (the GPU host's pip environment) and protoc (on PATH
or /opt/deps/usr/bin/protoc); no generated _pb2 files. Exit status 0 when every check passes.
tests/gpu/cuda-shm-check.sh starts a server and runs this.
"""

import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

import grpc
import torch
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "bench", "peers"))
from python_batching_server import find_protoc, protoc_env  # noqa: E402

SERVICE = "/inference.GRPCInferenceService/"
SHAPE = [1, 32, 256]
FAILURES = []


def load_messages(protoc):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "inference.desc")
        subprocess.run([protoc, "--include_imports", "--descriptor_set_out=" + out, "-I",
                        os.path.join(REPO_ROOT, "proto"), "inference.proto"],
                       env=protoc_env(protoc), check=True)
        with open(out, "rb") as f:
            file_set = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in file_set.file:
        pool.AddSerializedFile(file_proto.SerializeToString())
    get = getattr(message_factory, "GetMessageClass", None) or \
        message_factory.MessageFactory(pool).GetPrototype

    class Messages:
        def __getattr__(self, name):
            return get(pool.FindMessageTypeByName("inference." + name))
    return Messages()


def check(name, ok, detail=""):
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""))
    if not ok:
        FAILURES.append(name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", default="127.0.0.1:8001")
    parser.add_argument("--protoc", default="")
    parser.add_argument("--model", default="demo")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("torch.cuda is not available")
    m = load_messages(find_protoc(args.protoc))
    channel = grpc.insecure_channel(args.address)

    def rpc(method, request, response_type):
        call = channel.unary_unary(SERVICE + method, request_serializer=lambda r: r.SerializeToString(),
                                   response_deserializer=response_type.FromString)
        return call(request, timeout=60)

    def rpc_error(method, request, response_type):
        try:
            rpc(method, request, response_type)
            return None
        except grpc.RpcError as e:
            return e

    # One allocation holds the input and the output, so one handle (a handle can be opened only
    # once per process, and PyTorch may place two tensors in the same allocation).
    n = SHAPE[0] * SHAPE[1] * SHAPE[2]
    buffer = torch.empty(2 * n, dtype=torch.float32, device="cuda")
    x = buffer[:n].view(SHAPE)
    y = buffer[n:].view(SHAPE)
    x.copy_(torch.randn(SHAPE, generator=torch.Generator().manual_seed(7)).cuda())
    y.fill_(float("nan"))
    torch.cuda.synchronize()
    shared = buffer.untyped_storage()._share_cuda_()
    device, handle, offset = shared[0], shared[1], shared[3]
    # PyTorch >= 2.4 prefixes the cudaIpcMemHandle_t with a version byte and a type byte ('c':
    # cudaMalloc memory; 'e', expandable segments, has no such handle).
    if len(handle) == 66 and handle[1:2] == b"c":
        handle = handle[2:]
    check("IPC handle is a cudaIpcMemHandle_t", len(handle) == 64,
          "%d bytes, starting %r (expandable segments cannot be shared this way)"
          % (len(handle), handle[:2]))
    if len(handle) != 64:
        return 1
    nbytes = n * 4

    register = m.CudaSharedMemoryRegisterRequest(name="cuda_io", raw_handle=handle,
                                                 device_id=device, byte_size=offset + 2 * nbytes)
    err = rpc_error("CudaSharedMemoryRegister", register, m.CudaSharedMemoryRegisterResponse)
    check("register", err is None, err.details() if err else "")
    if err is not None:
        return 1
    status = rpc("CudaSharedMemoryStatus", m.CudaSharedMemoryStatusRequest(),
                 m.CudaSharedMemoryStatusResponse)
    check("status lists the region", "cuda_io" in status.regions and
          status.regions["cuda_io"].byte_size == offset + 2 * nbytes, str(status).replace("\n", " "))

    def infer_request(shm):
        request = m.ModelInferRequest(model_name=args.model)
        tensor = request.inputs.add(name="INPUT0", datatype="FP32", shape=SHAPE)
        if shm:
            tensor.parameters["shared_memory_region"].string_param = "cuda_io"
            tensor.parameters["shared_memory_offset"].int64_param = offset
            tensor.parameters["shared_memory_byte_size"].int64_param = nbytes
            out = request.outputs.add(name="OUTPUT0")
            out.parameters["shared_memory_region"].string_param = "cuda_io"
            out.parameters["shared_memory_offset"].int64_param = offset + nbytes
            out.parameters["shared_memory_byte_size"].int64_param = nbytes
        else:
            host = x.cpu().contiguous()
            request.raw_input_contents.append(ctypes.string_at(host.data_ptr(), nbytes))
        return request

    reference = rpc("ModelInfer", infer_request(False), m.ModelInferResponse)
    expected = torch.frombuffer(bytearray(reference.raw_output_contents[0]),
                                dtype=torch.float32).view(SHAPE)
    response = rpc("ModelInfer", infer_request(True), m.ModelInferResponse)
    torch.cuda.synchronize()
    got = y.cpu()
    diff = (got - expected).abs().max().item()
    check("output written to device memory matches the socket's", diff <= 1e-3,
          "max |diff| %g" % diff)
    check("no raw bytes for the shm output", len(response.raw_output_contents) == 1 and
          len(response.raw_output_contents[0]) == 0)
    check("output shape still reported", list(response.outputs[0].shape) == SHAPE,
          str(list(response.outputs[0].shape)))

    err = rpc_error("CudaSharedMemoryRegister",
                    m.CudaSharedMemoryRegisterRequest(name="too_big", raw_handle=handle,
                                                      device_id=device, byte_size=1 << 40),
                    m.CudaSharedMemoryRegisterResponse)
    check("byte_size past the allocation is refused",
          err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT,
          err.details() if err else "accepted")
    err = rpc_error("CudaSharedMemoryRegister",
                    m.CudaSharedMemoryRegisterRequest(name="garbage", raw_handle=os.urandom(64),
                                                      device_id=device, byte_size=16),
                    m.CudaSharedMemoryRegisterResponse)
    check("a garbage handle is refused",
          err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT,
          err.details() if err else "accepted")

    rpc("CudaSharedMemoryUnregister", m.CudaSharedMemoryUnregisterRequest(name=""),
        m.CudaSharedMemoryUnregisterResponse)
    status = rpc("CudaSharedMemoryStatus", m.CudaSharedMemoryStatusRequest(),
                 m.CudaSharedMemoryStatusResponse)
    check("unregister empties the status", len(status.regions) == 0)
    err = rpc_error("ModelInfer", infer_request(True), m.ModelInferResponse)
    check("an unregistered region is not found",
          err is not None and err.code() == grpc.StatusCode.NOT_FOUND,
          err.details() if err else "accepted")
    # The server keeps serving after all of that.
    again = rpc("ModelInfer", infer_request(False), m.ModelInferResponse)
    check("server still serves", len(again.raw_output_contents[0]) == nbytes)
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
