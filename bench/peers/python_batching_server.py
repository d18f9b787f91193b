"""The roadmap's BatchingInferenceServer behind Python grpcio: coalesce's Python peer.

It speaks coalesce's protocol (Open Inference Protocol / KServe v2 over gRPC, package
`inference`) and serves the same demo model, so one load generator measures both. The design is
the roadmap's, kept as simple as it was there:

  gRPC handler thread --submit--> queue.Queue --> one batch worker thread
      waits on a Future            (unbounded)    takes the first request, then collects more
                                                  until --max_batch requests or --timeout_ms
                                                  since it took the first; torch.cat, forward
                                                  (inference_mode), .cpu() (the sync), split,
                                                  set each request's Future

Every handler thread is parked on its Future while its batch forms and runs, so the gRPC thread
pool (--workers, default 256) bounds the requests in flight: it must be at least the load
generator's concurrency, or the pool, not the batcher, is what gets measured.

--unbatched sets max_batch to 1: each request runs alone, with no wait (the roadmap's baseline).

Runs on Debian 12's packages (python3-grpcio, python3-protobuf 3.21, python3-torch 1.13) and on a
GPU host with pip's grpcio, protobuf 5.x/6.x and torch 2.x. Neither grpc_tools nor generated _pb2
files are needed: at start-up protoc compiles proto/inference.proto into a descriptor set, and the
message classes are built from it. numpy is not needed either.

    python3 bench/peers/python_batching_server.py --address=127.0.0.1:8021 --device=auto
    python3 bench/peers/python_batching_server.py --self_test
"""

import argparse
import concurrent.futures
import ctypes
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import torch
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_model  # noqa: E402  (found through the line above)

SERVICE = "inference.GRPCInferenceService"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FALLBACK_PROTOC = "/opt/deps/usr/bin/protoc"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
SERVER_NAME = "python-batching-server"
SERVER_VERSION = "0.1.0"


# --------------------------------------------------------------------------------------------
# Protocol messages, built from the .proto at start-up.

def find_protoc(flag_value):
    if flag_value:
        return flag_value
    found = shutil.which("protoc")
    if found:
        return found
    if os.path.exists(FALLBACK_PROTOC):
        return FALLBACK_PROTOC
    raise SystemExit("protoc not found: pass --protoc, put it on PATH, or install it at "
                     + FALLBACK_PROTOC)


def protoc_env(protoc):
    """protoc unpacked from .debs under some prefix (the GPU host's /opt/deps) finds its
    libprotoc only through LD_LIBRARY_PATH; add that prefix's lib dir when it is not /usr."""
    env = dict(os.environ)
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(protoc)))
    if prefix not in ("/usr", "/usr/local"):
        libs = [d for d in (os.path.join(prefix, "lib", "x86_64-linux-gnu"),
                            os.path.join(prefix, "lib"), os.path.join(prefix, "lib64"))
                if os.path.isdir(d)]
        if env.get("LD_LIBRARY_PATH"):
            libs.append(env["LD_LIBRARY_PATH"])
        if libs:
            env["LD_LIBRARY_PATH"] = ":".join(libs)
    return env


def load_messages(proto_dir, protoc):
    """Compiles inference.proto with protoc and returns {message name: class}."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "inference.desc")
        cmd = [protoc, "--include_imports", "--descriptor_set_out=" + out, "-I", proto_dir,
               "inference.proto"]
        result = subprocess.run(cmd, env=protoc_env(protoc), capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit("protoc failed (%s): %s" % (" ".join(cmd), result.stderr.strip()))
        with open(out, "rb") as f:
            file_set = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in file_set.file:
        pool.AddSerializedFile(file_proto.SerializeToString())
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.21.8
        get_class = message_factory.GetMessageClass
    else:
        get_class = message_factory.MessageFactory(pool).GetPrototype
    names = ["ServerLiveRequest", "ServerLiveResponse", "ServerReadyRequest",
             "ServerReadyResponse", "ModelReadyRequest", "ModelReadyResponse",
             "ServerMetadataRequest", "ServerMetadataResponse", "ModelMetadataRequest",
             "ModelMetadataResponse", "ModelInferRequest", "ModelInferResponse"]
    return {name: get_class(pool.FindMessageTypeByName("inference." + name)) for name in names}


# --------------------------------------------------------------------------------------------
# Tensors to and from the wire, without numpy.

def tensor_from_raw(raw, shape):
    # bytearray: torch.frombuffer wants a writable buffer; the copy is 32 KiB a sample.
    return torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(shape)


def tensor_to_raw(tensor):
    """The bytes of a CPU float32 tensor, row-major, native (little-endian) order."""
    tensor = tensor.contiguous()
    return ctypes.string_at(tensor.data_ptr(), tensor.numel() * tensor.element_size())


# --------------------------------------------------------------------------------------------
# The batcher.

class BatchingInferenceServer:
    """A queue and one worker thread that runs requests in batches.

    submit() is thread-safe and returns a concurrent.futures.Future that the worker completes
    with the request's output rows (a CPU float32 tensor), or with the exception the batch
    raised. Every submitted request is completed exactly once, including at close().
    """

    _STOP = object()

    def __init__(self, model, device, dtype, max_batch=32, timeout_ms=10.0):
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1, got %d" % max_batch)
        if timeout_ms < 0:
            raise ValueError("timeout_ms must be >= 0, got %g" % timeout_ms)
        self.model = model
        self.device = device
        self.dtype = dtype
        self.max_batch = max_batch
        self.timeout_s = timeout_ms / 1000.0
        self._queue = queue.Queue()
        self._stats_lock = threading.Lock()
        self._batches = 0
        self._requests = 0
        self._samples = 0
        self._batch_sizes = {}  # requests per batch -> number of such batches
        self._worker = threading.Thread(target=self._run, name="batch-worker", daemon=True)
        self._worker.start()

    def submit(self, x):
        """x: a CPU float32 tensor [n, 32, 256]. Returns a Future of its [n, 32, 256] output."""
        future = concurrent.futures.Future()
        self._queue.put((x, future))
        return future

    def close(self):
        """Finishes every request already submitted, then stops the worker."""
        self._queue.put(self._STOP)
        self._worker.join()

    def stats(self):
        with self._stats_lock:
            return {"batches": self._batches, "requests": self._requests,
                    "samples": self._samples, "batch_sizes": dict(self._batch_sizes)}

    def _run(self):
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is self._STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self.timeout_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is self._STOP:
                    stopping = True
                    break
                batch.append(item)
            self._execute(batch)

    def _execute(self, batch):
        futures = [f for _, f in batch]
        try:
            rows = [x.shape[0] for x, _ in batch]
            with torch.inference_mode():
                x = torch.cat([x for x, _ in batch]) if len(batch) > 1 else batch[0][0]
                y = self.model(x.to(self.device, self.dtype))
                y = y.float().cpu()  # the sync: copying to the host waits for the device
            outputs = torch.split(y, rows)
        except Exception as e:  # the whole batch fails together
            for f in futures:
                f.set_exception(e)
            return
        with self._stats_lock:
            self._batches += 1
            self._requests += len(batch)
            self._samples += sum(rows)
            self._batch_sizes[len(batch)] = self._batch_sizes.get(len(batch), 0) + 1
        for f, out in zip(futures, outputs):
            f.set_result(out)


# --------------------------------------------------------------------------------------------
# The gRPC service.

class InvalidRequest(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _is_demo(name, version):
    return name == demo_model.MODEL_NAME and version in ("", demo_model.MODEL_VERSION)


class InferenceService:
    """The handlers of GRPCInferenceService; each runs on a gRPC pool thread."""

    def __init__(self, messages, batcher):
        self.m = messages
        self.batcher = batcher

    def handler(self):
        def method(fn, request, response):
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=self.m[request].FromString,
                response_serializer=self.m[response].SerializeToString)
        return grpc.method_handlers_generic_handler(SERVICE, {
            "ServerLive": method(self.server_live, "ServerLiveRequest", "ServerLiveResponse"),
            "ServerReady": method(self.server_ready, "ServerReadyRequest",
                                  "ServerReadyResponse"),
            "ModelReady": method(self.model_ready, "ModelReadyRequest", "ModelReadyResponse"),
            "ServerMetadata": method(self.server_metadata, "ServerMetadataRequest",
                                     "ServerMetadataResponse"),
            "ModelMetadata": method(self.model_metadata, "ModelMetadataRequest",
                                    "ModelMetadataResponse"),
            "ModelInfer": method(self.model_infer, "ModelInferRequest", "ModelInferResponse"),
        })

    def server_live(self, request, context):
        return self.m["ServerLiveResponse"](live=True)

    def server_ready(self, request, context):
        return self.m["ServerReadyResponse"](ready=True)

    def model_ready(self, request, context):
        return self.m["ModelReadyResponse"](ready=_is_demo(request.name, request.version))

    def server_metadata(self, request, context):
        return self.m["ServerMetadataResponse"](name=SERVER_NAME, version=SERVER_VERSION)

    def model_metadata(self, request, context):
        if not _is_demo(request.name, request.version):
            context.abort(grpc.StatusCode.NOT_FOUND, self._not_found(request.name,
                                                                     request.version))
        response = self.m["ModelMetadataResponse"](
            name=demo_model.MODEL_NAME, versions=[demo_model.MODEL_VERSION], platform="pytorch")
        for tensors, name in ((response.inputs, demo_model.INPUT_NAME),
                              (response.outputs, demo_model.OUTPUT_NAME)):
            t = tensors.add()
            t.name = name
            t.datatype = "FP32"
            t.shape.extend((-1,) + demo_model.SAMPLE_SHAPE)
        return response

    def model_infer(self, request, context):
        try:
            x, typed = self._parse_infer(request)
        except InvalidRequest as e:
            context.abort(e.code, str(e))
        future = self.batcher.submit(x)
        try:
            y = future.result(timeout=wait_timeout(context.time_remaining()))
        except concurrent.futures.TimeoutError:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "inference did not finish in time")
        except Exception as e:
            context.abort(grpc.StatusCode.INTERNAL, "inference failed: %r" % (e,))
        response = self.m["ModelInferResponse"](
            model_name=demo_model.MODEL_NAME, model_version=demo_model.MODEL_VERSION,
            id=request.id)
        out = response.outputs.add()
        out.name = demo_model.OUTPUT_NAME
        out.datatype = "FP32"
        out.shape.extend(y.shape)
        # Answer in the form the request used: raw bytes for raw, fp32_contents for typed.
        if typed:
            out.contents.fp32_contents.extend(y.reshape(-1).tolist())
        else:
            response.raw_output_contents.append(tensor_to_raw(y))
        return response

    def _parse_infer(self, request):
        """Returns (INPUT0 as a CPU float32 tensor, whether it came as typed contents)."""
        if not _is_demo(request.model_name, request.model_version):
            raise InvalidRequest(grpc.StatusCode.NOT_FOUND,
                                 self._not_found(request.model_name, request.model_version))
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        if len(request.inputs) != 1 or request.inputs[0].name != demo_model.INPUT_NAME:
            raise InvalidRequest(invalid, "expected exactly one input '%s', got [%s]" % (
                demo_model.INPUT_NAME, ", ".join(repr(i.name) for i in request.inputs)))
        for requested in request.outputs:
            if requested.name != demo_model.OUTPUT_NAME:
                raise InvalidRequest(invalid, "unknown output '%s'; the model has only '%s'" % (
                    requested.name, demo_model.OUTPUT_NAME))
        tensor = request.inputs[0]
        if tensor.datatype != "FP32":
            raise InvalidRequest(invalid, "input '%s': expected datatype FP32, got %s" % (
                tensor.name, tensor.datatype))
        shape = tuple(tensor.shape)
        if len(shape) != 3 or shape[0] < 1 or shape[1:] != demo_model.SAMPLE_SHAPE:
            raise InvalidRequest(invalid, "input '%s': expected shape [n, %d, %d] with n >= 1, "
                                 "got %s" % ((tensor.name,) + demo_model.SAMPLE_SHAPE +
                                             (list(shape),)))
        elements = shape[0] * shape[1] * shape[2]
        if len(request.raw_input_contents) > 0:
            raw = request.raw_input_contents[0]
            if len(raw) != elements * 4:
                raise InvalidRequest(invalid, "input '%s': shape %s needs %d bytes, got %d" % (
                    tensor.name, list(shape), elements * 4, len(raw)))
            return tensor_from_raw(raw, shape), False
        values = tensor.contents.fp32_contents
        if len(values) != elements:
            raise InvalidRequest(invalid, "input '%s': shape %s needs %d fp32_contents, got %d"
                                 % (tensor.name, list(shape), elements, len(values)))
        return torch.tensor(values, dtype=torch.float32).reshape(shape), True

    @staticmethod
    def _not_found(name, version):
        return "model '%s' version '%s' is not served; this server holds only '%s' version '%s'" % (
            name, version, demo_model.MODEL_NAME, demo_model.MODEL_VERSION)


def start_server(args, address):
    """Builds the model, batcher and gRPC server; returns (server, batcher, messages, port)."""
    messages = load_messages(args.proto_dir, find_protoc(args.protoc))
    dtype = {"auto": None, "fp16": torch.float16, "fp32": torch.float32}[args.precision]
    model, device, dtype = demo_model.build_demo_model(args.device, dtype)
    with torch.inference_mode():  # first-call costs (CUDA context, kernels) before serving
        model(torch.zeros((1,) + demo_model.SAMPLE_SHAPE, device=device, dtype=dtype)).cpu()
    max_batch = 1 if args.unbatched else args.max_batch
    batcher = BatchingInferenceServer(model, device, dtype, max_batch, args.timeout_ms)
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=args.workers),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    server.add_generic_rpc_handlers((InferenceService(messages, batcher).handler(),))
    port = server.add_insecure_port(address)
    if port == 0:
        raise SystemExit("cannot listen on " + address)
    server.start()
    print("%s listening on %s: device=%s dtype=%s max_batch=%d timeout_ms=%g workers=%d" % (
        SERVER_NAME, address.rsplit(":", 1)[0] + ":" + str(port), device,
        str(dtype).replace("torch.", ""), max_batch, args.timeout_ms, args.workers), flush=True)
    return server, batcher, messages, port


def serve(args):
    server, batcher, _, _ = start_server(args, args.address)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    while not stop.wait(0.5):  # wakes so the main thread can run the signal handlers
        pass
    server.stop(grace=2.0).wait()
    batcher.close()
    print("%s stopped: %s" % (SERVER_NAME, batcher.stats()), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Self-test.

def wait_timeout(time_remaining):
    """A call's time left as a timeout for Future.result(): None (wait as long as it takes) for a
    call without a deadline, for which grpcio reports a time far beyond what threading can wait
    (OverflowError above threading.TIMEOUT_MAX)."""
    if time_remaining is None or time_remaining >= threading.TIMEOUT_MAX:
        return None
    return time_remaining


def self_test(args):
    """Serves on a free port, checks answers against the model applied directly. Returns 0/1."""
    server, batcher, m, port = start_server(args, "127.0.0.1:0")
    channel = grpc.insecure_channel(
        "127.0.0.1:%d" % port, options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])

    def stub(method, request, response):
        return channel.unary_unary("/%s/%s" % (SERVICE, method),
                                   request_serializer=m[request].SerializeToString,
                                   response_deserializer=m[response].FromString)
    infer = stub("ModelInfer", "ModelInferRequest", "ModelInferResponse")
    failures = []

    def check(condition, what):
        print("%s %s" % ("ok  " if condition else "FAIL", what), flush=True)
        if not condition:
            failures.append(what)

    # Metadata RPCs.
    live = stub("ServerLive", "ServerLiveRequest", "ServerLiveResponse")(
        m["ServerLiveRequest"](), timeout=10)
    ready = stub("ServerReady", "ServerReadyRequest", "ServerReadyResponse")(
        m["ServerReadyRequest"](), timeout=10)
    check(live.live and ready.ready, "ServerLive and ServerReady are true")
    model_ready = stub("ModelReady", "ModelReadyRequest", "ModelReadyResponse")
    check(model_ready(m["ModelReadyRequest"](name="demo"), timeout=10).ready and
          not model_ready(m["ModelReadyRequest"](name="nope"), timeout=10).ready,
          "ModelReady: demo true, unknown false")
    meta = stub("ModelMetadata", "ModelMetadataRequest", "ModelMetadataResponse")(
        m["ModelMetadataRequest"](name="demo"), timeout=10)
    check(meta.name == "demo" and list(meta.versions) == ["1"] and
          [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] ==
          [("INPUT0", "FP32", [-1, 32, 256])] and
          [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] ==
          [("OUTPUT0", "FP32", [-1, 32, 256])], "ModelMetadata describes demo")
    server_meta = stub("ServerMetadata", "ServerMetadataRequest", "ServerMetadataResponse")(
        m["ServerMetadataRequest"](), timeout=10)
    check(server_meta.name == SERVER_NAME, "ServerMetadata names the server")

    def make_request(x, typed, request_id):
        request = m["ModelInferRequest"](model_name="demo", id=request_id)
        tensor = request.inputs.add()
        tensor.name = "INPUT0"
        tensor.datatype = "FP32"
        tensor.shape.extend(x.shape)
        if typed:
            tensor.contents.fp32_contents.extend(x.reshape(-1).tolist())
        else:
            request.raw_input_contents.append(tensor_to_raw(x))
        return request

    def read_output(response):
        out = response.outputs[0]
        shape = tuple(out.shape)
        if len(response.raw_output_contents) > 0:
            return tensor_from_raw(response.raw_output_contents[0], shape)
        return torch.tensor(out.contents.fp32_contents, dtype=torch.float32).reshape(shape)

    # Errors.
    bad = make_request(torch.zeros(1, 32, 255), False, "bad-shape")
    try:
        infer(bad, timeout=10)
        check(False, "a [1,32,255] input is refused with INVALID_ARGUMENT")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT,
              "a [1,32,255] input is refused with INVALID_ARGUMENT (%s)" % e.details())
    unknown = make_request(torch.zeros(1, 32, 256), False, "unknown")
    unknown.model_name = "nope"
    try:
        infer(unknown, timeout=10)
        check(False, "an unknown model is refused with NOT_FOUND")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, "an unknown model is refused with NOT_FOUND")

    # Concurrent inference, raw and typed, batch 1 to 3 per request.
    generator = torch.Generator().manual_seed(7)
    inputs = [torch.rand((1 + i % 3,) + demo_model.SAMPLE_SHAPE, generator=generator) * 2 - 1
              for i in range(96)]
    requests = [make_request(x, i % 4 == 3, "req-%d" % i) for i, x in enumerate(inputs)]
    before = batcher.stats()
    with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
        futures = [pool.submit(infer, r, timeout=120) for r in requests]
        responses = [f.result() for f in futures]
    after = batcher.stats()

    # The reference: the same model, device and dtype, applied to each request alone.
    fp32 = batcher.dtype == torch.float32
    rtol, atol = (1e-5, 1e-5) if fp32 else (1e-2, 2e-3)
    worst = 0.0
    all_close = True
    ids_match = True
    typed_answers = 0
    with torch.inference_mode():
        for i, (x, response) in enumerate(zip(inputs, responses)):
            expected = batcher.model(x.to(batcher.device, batcher.dtype)).float().cpu()
            got = read_output(response)
            ids_match &= response.id == "req-%d" % i and tuple(got.shape) == tuple(x.shape)
            typed_answers += len(response.raw_output_contents) == 0
            worst = max(worst, float((got - expected).abs().max()))
            all_close &= bool(torch.allclose(got, expected, rtol=rtol, atol=atol))
    check(ids_match, "96 concurrent requests answered with their own id and shape")
    check(typed_answers == 24, "typed requests answered with typed contents (%d of 24)"
          % typed_answers)
    check(all_close, "outputs equal the model applied directly within rtol=%g atol=%g "
          "(max |diff| %.3g, %s)" % (rtol, atol, worst, str(batcher.dtype).replace("torch.", "")))
    sizes = {k: v - before["batch_sizes"].get(k, 0) for k, v in after["batch_sizes"].items()
             if v - before["batch_sizes"].get(k, 0) > 0}
    if batcher.max_batch > 1:
        check(max(sizes) > 1, "batches of more than one request formed: %d batches, "
              "requests per batch %s" % (after["batches"] - before["batches"],
                                         dict(sorted(sizes.items()))))
    else:
        check(max(sizes) == 1, "unbatched: every batch holds one request %s" % sizes)

    # A call without a deadline (h2load's, and most clients' by default) waits for its batch.
    ones = make_request(torch.ones((1,) + demo_model.SAMPLE_SHAPE), False, "ones")
    try:
        no_deadline = read_output(infer(ones))
        check(tuple(no_deadline.shape) == (1,) + demo_model.SAMPLE_SHAPE,
              "a call without a deadline is answered")
    except grpc.RpcError as e:
        check(False, "a call without a deadline is answered (%s: %s)" % (e.code(), e.details()))
    first = read_output(infer(ones, timeout=10)).reshape(-1)[:4].tolist()
    print("all-ones [1,32,256] -> OUTPUT0[0,0,:4] = %s" % first, flush=True)

    channel.close()
    server.stop(grace=2.0).wait()
    batcher.close()
    print("self-test %s" % ("passed" if not failures else "FAILED: %s" % failures), flush=True)
    return 0 if not failures else 1


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default="127.0.0.1:8021", help="host:port to listen on")
    p.add_argument("--max_batch", type=int, default=32, help="most requests in one batch")
    p.add_argument("--timeout_ms", type=float, default=10.0,
                   help="how long a batch may collect requests after its first one")
    p.add_argument("--unbatched", action="store_true",
                   help="max_batch=1: each request runs alone, with no wait")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cuda, cpu")
    p.add_argument("--precision", default="auto", choices=["auto", "fp16", "fp32"],
                   help="auto: fp16 on an accelerator, fp32 on CPU (coalesce's default)")
    p.add_argument("--workers", type=int, default=256,
                   help="gRPC thread pool size; each in-flight request holds a thread, so this "
                        "must be at least the client concurrency (default 256)")
    p.add_argument("--protoc", default="",
                   help="protoc binary (default: protoc on PATH, then " + FALLBACK_PROTOC + ")")
    p.add_argument("--proto_dir", default=os.path.join(REPO_ROOT, "proto"),
                   help="directory holding inference.proto")
    p.add_argument("--self_test", action="store_true",
                   help="serve on a free port, check answers and batching, exit 0 or 1")
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    return self_test(args) if args.self_test else serve(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
