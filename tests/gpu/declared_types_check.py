#!/usr/bin/env python3
"""On the CUDA host: issue 15's silent wrong answers, checked where they bit, on the GPU with the
server's default precision (fp16). Writes a repository of TorchScript models with the host's
PyTorch, serves it with `coalesce-server --device=cuda`, and checks over gRPC that
- an FP64 model computes in FP64: 1 + 2e-9 comes back exact, not 1.0;
- an INT64 model keeps 2**60 + 1;
- a max_batch_size 0 model sees exactly its dims ([3, 4]: x.sum(0) and x.dim());
- an FP32 model still runs in fp16 (its answer rounds like fp16).
  tests/gpu/declared_types_check.py --server build-cuda/server/coalesce-server
Needs torch with CUDA, grpcio and protobuf (the GPU host's Python) and protoc."""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cuda_shared_memory_check import find_protoc, load_messages  # noqa: E402

SERVICE = "/inference.GRPCInferenceService/"
FAILURES = []


def check(name, ok, detail=""):
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""))
    if not ok:
        FAILURES.append(name)


class AddTiny(torch.nn.Module):
    def forward(self, x):
        return x + 2e-9


class AddOne(torch.nn.Module):
    def forward(self, x):
        return x + 1


class Rank(torch.nn.Module):
    def forward(self, x):
        return x.sum(0) * 10 + x.dim()


class Scale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0001]))

    def forward(self, x):
        return x * self.w


MODELS = {  # name: (module, type, dims, max_batch_size, output dims)
    "fp64": (AddTiny(), "TYPE_FP64", [4], 8, [4]),
    "int64": (AddOne(), "TYPE_INT64", [2], 8, [2]),
    "rank": (Rank(), "TYPE_FP32", [3, 4], 0, [4]),
    "fp32": (Scale(), "TYPE_FP32", [4], 8, [4]),
}


def write_repository(root):
    for name, (module, dtype, dims, mbs, out_dims) in MODELS.items():
        os.makedirs(os.path.join(root, name, "1"))
        torch.jit.save(torch.jit.script(module), os.path.join(root, name, "1", "model.pt"))
        with open(os.path.join(root, name, "config.pbtxt"), "w") as f:
            f.write('platform: "pytorch_libtorch"\nmax_batch_size: %d\n'
                    'input [{ name: "INPUT__0" data_type: %s dims: %s }]\n'
                    'output [{ name: "OUTPUT__0" data_type: %s dims: %s }]\n'
                    % (mbs, dtype, dims, dtype, out_dims))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--protoc", default="")
    args = p.parse_args()
    m = load_messages(find_protoc(args.protoc))
    with tempfile.TemporaryDirectory() as root:
        write_repository(root)
        ports = []
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
            s.close()
        port, metrics_port = ports
        log = open(os.path.join(root, "server.log"), "w")
        server = subprocess.Popen([args.server, "--model_repository=" + root, "--device=cuda",
                                   "--grpc_address=127.0.0.1:%d" % port,
                                   "--metrics_address=127.0.0.1:%d" % metrics_port], stdout=log, stderr=log)
        try:
            channel = grpc.insecure_channel("127.0.0.1:%d" % port)
            grpc.channel_ready_future(channel).result(timeout=120)

            def infer(model, dtype, shape, array):
                call = channel.unary_unary(SERVICE + "ModelInfer",
                                           request_serializer=lambda r: r.SerializeToString(),
                                           response_deserializer=m.ModelInferResponse.FromString)
                request = m.ModelInferRequest(model_name=model)
                request.inputs.add(name="INPUT__0", datatype=dtype, shape=shape)
                request.raw_input_contents.append(array.tobytes())
                for _ in range(600):
                    try:
                        return call(request, timeout=30)
                    except grpc.RpcError as e:
                        if e.code() != grpc.StatusCode.UNAVAILABLE:
                            raise
                        time.sleep(0.2)
                raise RuntimeError("model %s never became available" % model)

            r = infer("fp64", "FP64", [1, 4], np.ones((1, 4), "<f8"))
            out = np.frombuffer(r.raw_output_contents[0], "<f8")
            check("FP64 model on CUDA: 1 + 2e-9 is exact", np.all(out == 1 + 2e-9), str(out))
            r = infer("int64", "INT64", [1, 2], np.array([[2**60, -5]], "<i8"))
            out = np.frombuffer(r.raw_output_contents[0], "<i8")
            check("INT64 model on CUDA keeps 2**60 + 1", list(out) == [2**60 + 1, -4], str(out))
            x = np.arange(12, dtype="<f4").reshape(3, 4)
            r = infer("rank", "FP32", [3, 4], x)
            out = np.frombuffer(r.raw_output_contents[0], "<f4")
            want = x.sum(0) * 10 + 2
            check("max_batch_size 0 model on CUDA sees [3, 4] (rank 2)",
                  list(r.outputs[0].shape) == [4] and np.allclose(out, want, rtol=1e-2),
                  "%s vs %s, shape %s" % (out, want, list(r.outputs[0].shape)))
            r = infer("fp32", "FP32", [1, 4], np.full((1, 4), 1000.0, "<f4"))
            out = np.frombuffer(r.raw_output_contents[0], "<f4")
            check("FP32 model on CUDA still runs in fp16 (1000 * 1.0001 rounds to 1000)",
                  np.all(out == 1000.0), str(out))
        finally:
            server.terminate()
            server.wait(timeout=60)
            log.close()
            if FAILURES:
                print(open(os.path.join(root, "server.log")).read()[-3000:])
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
