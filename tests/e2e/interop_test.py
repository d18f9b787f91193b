#!/usr/bin/python3
"""Interoperability: a client that is not coalesce's own (Python grpcio, messages generated from
an independent transcription of the published protocol) against the real coalesce-server.

  interop_test.py --server build/server/coalesce-server --protoc /usr/bin/protoc [--keep]

The schema is tests/e2e/oip/grpc_service.proto and oip/model_config.proto, written from
KServe's grpc_predict_v2.proto and Triton's grpc_service.proto / model_config.proto, NOT from
coalesce's proto/: a field number that coalesce got wrong shows up here as a missing or garbled
value. At start-up protoc compiles them with --python_out into a temporary folder (no
grpc_tools: methods are called through grpc.Channel.unary_unary / stream_stream with the
messages' SerializeToString / FromString).

Set-up: one coalesce-server with the built-in demo model on LibTorch's CPU backend
(--backend=torch --device=cpu --max_batch_size=4), fresh, on free loopback ports. The reference
output is bench/peers/demo_model.py's DemoModel (same splitmix64 weights, seed 42) run in
float64; outputs must agree within 1e-4 absolute.

Each RPC group is one function and each records its own checks, so one run reports every group:
  health        ServerLive and ServerReady are true
  server        ServerMetadata names the server "coalesce"
  model ready   ModelReady is true for "demo"; false (not an error, as in Triton) for a model or
                version that does not exist
  metadata      ModelMetadata: name, version, platform, INPUT0/OUTPUT0, FP32, [-1, 32, 256]
  infer         ModelInfer with raw_input_contents (2 rows) and with typed fp32_contents (1 row):
                values, id echoed, output name/datatype/shape; an explicitly requested output;
                an unknown requested output and a wrong input shape are INVALID_ARGUMENT naming
                the tensor
  stream        ModelStreamInfer: 5 requests with distinct ids on one stream, each answered once
                with its own values; a bad request in the middle yields a response with an
                error_message, and the requests after it are still answered
  config        ModelConfig: name, platform, max_batch_size = the flag, input/output specs
  statistics    ModelStatistics (last, on the fresh server): inference_count = rows answered OK,
                success.count = requests answered OK, 0 < execution_count <= requests OK
An RPC that answers UNIMPLEMENTED fails its group: the design makes the extensions part of
coalesce's protocol, not options.

Needs python3-grpcio and python3-protobuf, and python3-torch (with numpy) for the reference;
without one it exits 77, which CTest counts as a failure here (no SKIP_RETURN_CODE).
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_util as u  # noqa: E402

MODEL = "demo"
MODEL_VERSION = "1"
INPUT, OUTPUT = "INPUT0", "OUTPUT0"
SAMPLE_SHAPE = (32, 256)
SAMPLE_ELEMENTS = SAMPLE_SHAPE[0] * SAMPLE_SHAPE[1]
MAX_BATCH_SIZE = 4
TOLERANCE = 1e-4
STREAM_REQUESTS = 5
SERVICE = "/inference.GRPCInferenceService/"
RPC_TIMEOUT_S = 30


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="coalesce-server binary")
    p.add_argument("--protoc", help="protoc binary (default: from PATH)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return p.parse_args()


# --------------------------------------------------------------------------------------------
# The independent client

def generate_messages(protoc, out_dir):
    """Compiles tests/e2e/oip/*.proto with --python_out into out_dir and imports the modules."""
    proto_dir = os.path.join(HERE, "oip")
    cmd = [protoc, "-I", proto_dir, "--python_out=" + out_dir,
           "grpc_service.proto", "model_config.proto"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit("protoc failed (%s): %s" % (" ".join(cmd), result.stderr.strip()))
    sys.path.insert(0, out_dir)
    import grpc_service_pb2  # noqa: E402  (generated just above)
    import model_config_pb2  # noqa: E402
    return grpc_service_pb2, model_config_pb2


class Client:
    """One channel and a callable per RPC, built from the generated messages only."""

    def __init__(self, grpc, pb, mc, port):
        self.grpc, self.pb, self.mc = grpc, pb, mc  # mc: model_config_pb2
        self.channel = u.grpc_channel(port)
        for name in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata",
                     "ModelMetadata", "ModelInfer", "ModelConfig", "ModelStatistics"):
            request = getattr(pb, name + "Request")
            response = getattr(pb, name + "Response")
            setattr(self, name, self.channel.unary_unary(
                SERVICE + name, request_serializer=request.SerializeToString,
                response_deserializer=response.FromString))
        self.ModelStreamInfer = self.channel.stream_stream(
            SERVICE + "ModelStreamInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelStreamInferResponse.FromString)

    def error_of(self, call, request):
        """(code name, details) of a unary call expected to fail; ("OK", "") if it did not."""
        try:
            call(request, timeout=RPC_TIMEOUT_S)
            return ("OK", "")
        except self.grpc.RpcError as e:
            return (e.code().name, e.details() or "")


# --------------------------------------------------------------------------------------------
# Reference model and tensors

class Reference:
    """bench/peers/demo_model.py's DemoModel in float64, and deterministic input rows."""

    def __init__(self):
        try:
            import numpy
            import torch
        except ImportError as e:
            u.skip("the reference needs python3-torch and python3-numpy (%s)" % e)
        sys.path.insert(0, os.path.join(u.REPO_ROOT, "bench", "peers"))
        import demo_model  # noqa: E402  (found through the line above)

        assert (demo_model.MODEL_NAME, demo_model.INPUT_NAME, demo_model.OUTPUT_NAME) == (
            MODEL, INPUT, OUTPUT), "bench/peers/demo_model.py names changed"
        self.np, self.torch = numpy, torch
        self.model = demo_model.DemoModel().double().eval()
        self.rng = numpy.random.default_rng(20240506)

    def rows(self, count):
        """A float32 array [count, 32, 256] of values in [-1, 1)."""
        return self.rng.uniform(-1.0, 1.0, (count,) + SAMPLE_SHAPE).astype(self.np.float32)

    def expected(self, x):
        with self.torch.inference_mode():
            y = self.model(self.torch.from_numpy(x.astype(self.np.float64)))
        return y.numpy()

    def max_error(self, x, got_bytes):
        """Largest |server - reference| for input x, or None if got_bytes has the wrong size."""
        want = self.expected(x)
        if len(got_bytes) != want.size * 4:
            return None
        got = self.np.frombuffer(got_bytes, dtype="<f4").reshape(want.shape)
        return float(self.np.max(self.np.abs(got.astype(self.np.float64) - want)))


def infer_request(pb, request_id, x, typed=False, outputs=(), shape=None):
    """A ModelInferRequest for the demo model with input x, raw unless typed."""
    request = pb.ModelInferRequest(model_name=MODEL, id=request_id)
    tensor = request.inputs.add(name=INPUT, datatype="FP32")
    tensor.shape.extend(shape or x.shape)
    if typed:
        tensor.contents.fp32_contents.extend(x.reshape(-1).tolist())
    else:
        request.raw_input_contents.append(x.astype("<f4").tobytes())
    for name in outputs:
        request.outputs.add(name=name)
    return request


def output_bytes(response, index=0):
    """Output `index` as little-endian float32 bytes, from raw_output_contents or, failing
    that, from the typed contents."""
    if len(response.raw_output_contents) > index:
        return response.raw_output_contents[index]
    values = response.outputs[index].contents.fp32_contents
    return struct.pack("<%df" % len(values), *values)


# --------------------------------------------------------------------------------------------
# Checks

class Results:
    """Every check's outcome, and the tally of inference the server answered OK."""

    def __init__(self, grpc):
        self.grpc = grpc
        self.failures = []
        self.requests_ok = 0
        self.rows_ok = 0
        self.group = ""

    def check(self, name, ok, detail):
        u.log("%-4s [%s] %s: %s" % ("ok" if ok else "FAIL", self.group, name, detail))
        if not ok:
            self.failures.append("[%s] %s: %s" % (self.group, name, detail))
        return ok

    def run_group(self, name, function, *args):
        """Runs one RPC group; an RPC error that escapes it fails the group, with its code."""
        self.group = name
        try:
            function(self, *args)
        except self.grpc.RpcError as e:
            self.check("RPC answered", False, "%s: %s" % (e.code().name, e.details()))

    def count_ok(self, rows):
        self.requests_ok += 1
        self.rows_ok += rows


def check_infer_response(r, ref, what, response, request_id, x):
    """Checks one successful ModelInferResponse against x's reference; True if all held."""
    rows = x.shape[0]
    ok = r.check(what + ": id echoed", response.id == request_id,
                 "%r (sent %r)" % (response.id, request_id))
    ok &= r.check(what + ": model name and version",
                  (response.model_name, response.model_version) == (MODEL, MODEL_VERSION),
                  "%r %r" % (response.model_name, response.model_version))
    outputs = [(t.name, t.datatype, list(t.shape)) for t in response.outputs]
    ok &= r.check(what + ": outputs", outputs == [(OUTPUT, "FP32", [rows, 32, 256])],
                  str(outputs))
    if not response.outputs:
        return False
    error = ref.max_error(x, output_bytes(response))
    ok &= r.check(what + ": values within %g of the reference" % TOLERANCE,
                  error is not None and error <= TOLERANCE,
                  "wrong byte count" if error is None else "max |error| %.3g" % error)
    return ok


def check_health(r, client, _ref):
    live = client.ServerLive(client.pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S)
    r.check("ServerLive.live", live.live is True, str(live.live))
    ready = client.ServerReady(client.pb.ServerReadyRequest(), timeout=RPC_TIMEOUT_S)
    r.check("ServerReady.ready", ready.ready is True, str(ready.ready))


def check_server_metadata(r, client, _ref):
    metadata = client.ServerMetadata(client.pb.ServerMetadataRequest(), timeout=RPC_TIMEOUT_S)
    r.check("name", metadata.name == "coalesce", repr(metadata.name))
    r.check("version is set", metadata.version != "", repr(metadata.version))


def check_model_ready(r, client, _ref):
    pb = client.pb
    ready = client.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=RPC_TIMEOUT_S)
    r.check("demo ready", ready.ready is True, str(ready.ready))
    ready = client.ModelReady(pb.ModelReadyRequest(name=MODEL, version=MODEL_VERSION),
                              timeout=RPC_TIMEOUT_S)
    r.check("demo version 1 ready", ready.ready is True, str(ready.ready))
    # As Triton answers (its client's is_model_ready() returns False): not ready, not an error.
    ready = client.ModelReady(pb.ModelReadyRequest(name="no-such-model"), timeout=RPC_TIMEOUT_S)
    r.check("unknown model is not ready", ready.ready is False, str(ready.ready))
    ready = client.ModelReady(pb.ModelReadyRequest(name=MODEL, version="99"),
                              timeout=RPC_TIMEOUT_S)
    r.check("unknown version is not ready", ready.ready is False, str(ready.ready))


def check_model_metadata(r, client, _ref):
    metadata = client.ModelMetadata(client.pb.ModelMetadataRequest(name=MODEL),
                                    timeout=RPC_TIMEOUT_S)
    r.check("name", metadata.name == MODEL, repr(metadata.name))
    r.check("versions", list(metadata.versions) == [MODEL_VERSION], str(list(metadata.versions)))
    r.check("platform", metadata.platform == "pytorch_libtorch", repr(metadata.platform))
    for kind, tensors, name in (("inputs", metadata.inputs, INPUT),
                                ("outputs", metadata.outputs, OUTPUT)):
        got = [(t.name, t.datatype, list(t.shape)) for t in tensors]
        r.check(kind, got == [(name, "FP32", [-1, 32, 256])], str(got))


def check_model_infer(r, client, ref):
    pb = client.pb
    x = ref.rows(2)
    response = client.ModelInfer(infer_request(pb, "raw-2-rows", x), timeout=RPC_TIMEOUT_S)
    if check_infer_response(r, ref, "raw_input_contents, 2 rows", response, "raw-2-rows", x):
        r.count_ok(2)
    r.check("raw request answered in raw_output_contents", len(response.raw_output_contents) == 1,
            "%d entries" % len(response.raw_output_contents))

    x = ref.rows(1)
    response = client.ModelInfer(infer_request(pb, "typed-1-row", x, typed=True),
                                 timeout=RPC_TIMEOUT_S)
    if check_infer_response(r, ref, "typed fp32_contents, 1 row", response, "typed-1-row", x):
        r.count_ok(1)

    x = ref.rows(1)
    response = client.ModelInfer(infer_request(pb, "asks-output0", x, outputs=[OUTPUT]),
                                 timeout=RPC_TIMEOUT_S)
    if check_infer_response(r, ref, "requested output OUTPUT0", response, "asks-output0", x):
        r.count_ok(1)

    code, details = client.error_of(
        client.ModelInfer, infer_request(pb, "asks-unknown", ref.rows(1), outputs=["NO_SUCH"]))
    r.check("unknown requested output is INVALID_ARGUMENT naming it",
            code == "INVALID_ARGUMENT" and "NO_SUCH" in details, "%s %r" % (code, details))

    bad = ref.rows(1)[:, :, :255].copy()  # [1, 32, 255]: one feature short
    code, details = client.error_of(client.ModelInfer, infer_request(pb, "wrong-shape", bad))
    r.check("wrong input shape is INVALID_ARGUMENT naming the input",
            code == "INVALID_ARGUMENT" and INPUT in details, "%s %r" % (code, details))


def check_stream_infer(r, client, ref):
    """5 good requests and 1 bad on one stream; the bad one goes third, and the last three good
    ones are sent only once its error response has arrived, so they prove the stream went on."""
    pb = client.pb
    inputs = {"stream-%d" % i: ref.rows(1) for i in range(STREAM_REQUESTS)}
    ids = sorted(inputs)
    bad_request = infer_request(pb, "stream-bad", ref.rows(1)[:, :, :255].copy())
    error_seen = threading.Event()

    def requests():
        for request_id in ids[:2]:
            yield infer_request(pb, request_id, inputs[request_id])
        yield bad_request
        if not error_seen.wait(RPC_TIMEOUT_S):
            return  # the stream ends here; the missing answers are reported below
        for request_id in ids[2:]:
            yield infer_request(pb, request_id, inputs[request_id])

    answers, errors = {}, []
    try:
        for response in client.ModelStreamInfer(requests(), timeout=RPC_TIMEOUT_S * 2):
            if response.error_message:
                errors.append(response.error_message)
                error_seen.set()
            else:
                answer = response.infer_response
                answers.setdefault(answer.id, []).append(answer)
    finally:
        error_seen.set()  # never leave the request thread waiting

    r.check("one error response for the bad request, naming the input",
            len(errors) == 1 and INPUT in errors[0], str(errors))
    r.check("each good request answered exactly once",
            sorted(answers) == ids and all(len(a) == 1 for a in answers.values()),
            "answered ids %s" % {k: len(v) for k, v in sorted(answers.items())})
    for request_id in ids:
        if len(answers.get(request_id, ())) == 1:
            if check_infer_response(r, ref, "stream " + request_id, answers[request_id][0],
                                    request_id, inputs[request_id]):
                r.count_ok(1)
    after = [i for i in ids[2:] if i in answers]
    r.check("the stream went on after the error", len(after) == 3,
            "answered after the error: %s" % after)


def check_model_config(r, client, _ref):
    pb = client.pb
    response = client.ModelConfig(pb.ModelConfigRequest(name=MODEL), timeout=RPC_TIMEOUT_S)
    config = response.config
    r.check("name", config.name == MODEL, repr(config.name))
    r.check("max_batch_size = --max_batch_size", config.max_batch_size == MAX_BATCH_SIZE,
            str(config.max_batch_size))
    r.check("platform", config.platform == "pytorch_libtorch", repr(config.platform))
    fp32 = client.mc.TYPE_FP32
    got = [(t.name, t.data_type, list(t.dims)) for t in config.input]
    r.check("input (dims without the batch dimension)", got == [(INPUT, fp32, [32, 256])],
            str(got))
    got = [(t.name, t.data_type, list(t.dims)) for t in config.output]
    r.check("output (dims without the batch dimension)", got == [(OUTPUT, fp32, [32, 256])],
            str(got))
    code, details = client.error_of(client.ModelConfig, pb.ModelConfigRequest(name="no-such"))
    r.check("unknown model is NOT_FOUND", code == "NOT_FOUND", "%s %r" % (code, details))


def check_model_statistics(r, client, _ref):
    """Runs last: every inference this test sent has been answered, on a fresh server."""
    response = client.ModelStatistics(client.pb.ModelStatisticsRequest(name=MODEL),
                                      timeout=RPC_TIMEOUT_S)
    names = [s.name for s in response.model_stats]
    if not r.check("one entry, for demo", names == [MODEL], str(names)):
        return
    stats = response.model_stats[0]
    u.log("note: demo statistics: inference_count %d, execution_count %d, success %d, fail %d, "
          "batch sizes %s" % (stats.inference_count, stats.execution_count,
                              stats.inference_stats.success.count,
                              stats.inference_stats.fail.count,
                              [(b.batch_size, b.compute_infer.count) for b in stats.batch_stats]))
    r.check("inference_count = rows answered OK (%d)" % r.rows_ok,
            r.rows_ok > 0 and stats.inference_count == r.rows_ok, str(stats.inference_count))
    r.check("inference_stats.success.count = requests answered OK (%d)" % r.requests_ok,
            r.requests_ok > 0 and stats.inference_stats.success.count == r.requests_ok,
            str(stats.inference_stats.success.count))
    r.check("0 < execution_count <= requests answered OK (%d)" % r.requests_ok,
            0 < stats.execution_count <= r.requests_ok, str(stats.execution_count))


GROUPS = (
    ("health", check_health),
    ("server metadata", check_server_metadata),
    ("model ready", check_model_ready),
    ("model metadata", check_model_metadata),
    ("model infer", check_model_infer),
    ("stream infer", check_stream_infer),
    ("model config", check_model_config),
    ("model statistics", check_model_statistics),  # last: counts everything above
)


# --------------------------------------------------------------------------------------------
# The test

def run(args, tmp):
    try:
        import grpc
    except ImportError:
        u.skip("python3-grpcio is not installed")
    pb, mc = generate_messages(u.find_protoc(args.protoc), os.path.join(tmp, "generated"))
    ref = Reference()
    results = Results(grpc)
    with u.Processes(tmp) as procs:
        _, grpc_port, _ = u.start_coalesce_server(
            procs, "server", args.server,
            ["--backend=torch", "--device=cpu", "--max_batch_size=%d" % MAX_BATCH_SIZE])
        client = Client(grpc, pb, mc, grpc_port)
        u.wait_until(lambda: client.ServerReady(pb.ServerReadyRequest(), timeout=1).ready, 60,
                     "ServerReady")
        for name, function in GROUPS:
            results.run_group(name, function, client, ref)
        client.channel.close()
        exit_code = procs.stop("server", timeout_s=30)
    results.group = "shutdown"
    results.check("server exits 0 on SIGTERM", exit_code == 0, str(exit_code))
    return results.failures


def main():
    args = parse_args()
    tmp = tempfile.mkdtemp(prefix="coalesce-interop-e2e-")
    os.makedirs(os.path.join(tmp, "generated"))
    failures = ["exception"]
    try:
        failures = run(args, tmp)
    finally:
        if failures or args.keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
