#!/usr/bin/python3
"""Writes gRPC-framed request bodies for h2load (Debian nghttp2-client) that use Triton's system
shared-memory extension, so an independent load generator can drive coalesce with tensors in
/dev/shm (bench/gpu-shm.sh runs them beside coalesce-bench's --shm mode). Run from the project
root where protoc and python3-protobuf are installed; the bodies are plain files, so they can be
made here and carried to a machine that has neither:

  bench/shm_bodies.py OUT_DIR [--model demo --input INPUT0 --output OUTPUT0 --shape 1,32,256]

OUT_DIR gets:
  register_in.bin, register_out.bin   SystemSharedMemoryRegister for regions h2load_in and
                                      h2load_out (keys /coalesce_h2load_in, /coalesce_h2load_out)
  unregister.bin                      SystemSharedMemoryUnregister of every region
  infer_shm.bin                       ModelInfer: input and output in those regions
  infer_socket.bin                    the same request with the input bytes in the message
  region_bytes                        the byte size of each region (for truncate -s)

  truncate -s $(cat OUT/region_bytes) /dev/shm/coalesce_h2load_in /dev/shm/coalesce_h2load_out
  h2load -n1 -c1 -H 'content-type: application/grpc' -H 'te: trailers' -d OUT/register_in.bin \\
    http://127.0.0.1:8001/inference.GRPCInferenceService/SystemSharedMemoryRegister
  h2load -D 10 -c 16 -m 16 ... -d OUT/infer_shm.bin \\
    http://127.0.0.1:8001/inference.GRPCInferenceService/ModelInfer

Every in-flight request reads the same input region and the server writes every answer into the
same output region: the bytes there are meaningless, the cost per request is the real one."""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np


def frame(message):
    data = message.SerializeToString()
    return struct.pack(">BI", 0, len(data)) + data


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--model", default="demo")
    ap.add_argument("--input", default="INPUT0")
    ap.add_argument("--output", default="OUTPUT0")
    ap.add_argument("--shape", default="1,32,256")
    ap.add_argument("--proto", default="proto/inference.proto")
    a = ap.parse_args()
    gen = tempfile.mkdtemp(prefix="shmbody")
    d = os.path.dirname(os.path.abspath(a.proto))
    protos = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".proto")]
    subprocess.run([os.environ.get("PROTOC", "protoc"), f"-I{d}", f"--python_out={gen}", *protos],
                   check=True)
    sys.path.insert(0, gen)
    pb = __import__("inference_pb2")

    shape = [int(s) for s in a.shape.split(",")]
    x = np.random.default_rng(0).standard_normal(shape).astype("<f4")
    nbytes = x.nbytes
    os.makedirs(a.out, exist_ok=True)

    def write(name, message):
        with open(os.path.join(a.out, name), "wb") as f:
            f.write(frame(message))

    for side in ("in", "out"):
        write("register_%s.bin" % side, pb.SystemSharedMemoryRegisterRequest(
            name="h2load_" + side, key="/coalesce_h2load_" + side, offset=0, byte_size=nbytes))
    write("unregister.bin", pb.SystemSharedMemoryUnregisterRequest(name=""))

    shm = pb.ModelInferRequest(model_name=a.model)
    tensor = shm.inputs.add(name=a.input, datatype="FP32", shape=shape)
    tensor.parameters["shared_memory_region"].string_param = "h2load_in"
    tensor.parameters["shared_memory_byte_size"].int64_param = nbytes
    out = shm.outputs.add(name=a.output)
    out.parameters["shared_memory_region"].string_param = "h2load_out"
    out.parameters["shared_memory_byte_size"].int64_param = nbytes
    write("infer_shm.bin", shm)

    socket = pb.ModelInferRequest(model_name=a.model)
    socket.inputs.add(name=a.input, datatype="FP32", shape=shape)
    socket.raw_input_contents.append(x.tobytes())
    write("infer_socket.bin", socket)
    with open(os.path.join(a.out, "region_bytes"), "w") as f:
        f.write("%d\n" % nbytes)
    print("%s: shm request %d bytes, socket request %d bytes, regions of %d bytes" % (
        a.out, os.path.getsize(os.path.join(a.out, "infer_shm.bin")),
        os.path.getsize(os.path.join(a.out, "infer_socket.bin")), nbytes))


if __name__ == "__main__":
    main()
