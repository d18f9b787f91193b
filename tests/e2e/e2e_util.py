"""Shared pieces of coalesce's end-to-end tests: free ports, child processes that are always
stopped, protocol messages built from the .proto files, HTTP on loopback.

Runs on Debian's /usr/bin/python3 with python3-grpcio and python3-protobuf; no grpc_tools and
no generated _pb2 files: protoc compiles the .proto files into a descriptor set at start-up and
the message classes are built from it (as bench/peers/python_batching_server.py does).

Everything here talks to 127.0.0.1 only: proxies from the environment are ignored, both by
urllib here and (through clean_env) by the child processes.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP = 77  # CTest's SKIP_RETURN_CODE for these tests: a needed program is not installed.


def log(*parts):
    print("[%7.3f]" % (time.monotonic() - _T0), *parts, flush=True)


_T0 = time.monotonic()


def skip(reason):
    print("SKIP:", reason, flush=True)
    sys.exit(SKIP)


def require_program(name, given=None):
    """The path of a program, or exit with SKIP when it is not installed."""
    path = given or shutil.which(name) or next(
        (p for p in ("/usr/bin/" + name, "/usr/sbin/" + name) if os.access(p, os.X_OK)), None)
    if not path:
        skip("%s is not installed (Debian package: see scripts/install-deps.sh)" % name)
    return path


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now. Another process may take it
    before ours binds it; callers retry their start-up once when that happens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env():
    """The environment for child processes, without proxies: gRPC and Go honour http_proxy."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy")}
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def wait_until(predicate, timeout_s, what, interval_s=0.05):
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as e:  # noqa: BLE001 (a service that is not up yet fails in many ways)
            last_error = e
        time.sleep(interval_s)
    raise AssertionError("timed out after %.0f s waiting for %s (last error: %r)"
                         % (timeout_s, what, last_error))


def port_open(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url, timeout_s=5):
    assert url.startswith("http://127.0.0.1:"), url
    with _NO_PROXY_OPENER.open(url, timeout=timeout_s) as response:
        return response.read().decode()


class Processes:
    """Child processes that are stopped, whatever happens, when the `with` block ends.

    Each child runs in its own process group (so nginx's workers go with their master) and
    writes stdout and stderr to a log file in the test's temporary folder; the tail of every
    log is printed when the block ends with an exception.
    """

    def __init__(self, workdir):
        self.workdir = workdir
        self.children = {}  # name -> (Popen, log path)

    def __enter__(self):
        return self

    def start(self, name, argv):
        argv = list(argv)
        if os.sep in argv[0]:
            argv[0] = os.path.abspath(argv[0])  # children run in the temporary folder
        log_path = os.path.join(self.workdir, name + ".log")
        log_file = open(log_path, "ab")
        log("start %s: %s" % (name, " ".join(argv)))
        proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=clean_env(),
                                start_new_session=True, cwd=self.workdir)
        log_file.close()
        self.children[name] = (proc, log_path)
        return proc

    def log_text(self, name):
        with open(self.children[name][1], errors="replace") as f:
            return f.read()

    def stop(self, name, timeout_s=10):
        """SIGTERM, then SIGKILL to the process group after timeout_s; returns the exit code."""
        proc, _ = self.children[name]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log("%s ignored SIGTERM for %.0f s: SIGKILL" % (name, timeout_s))
        self._kill_group(proc)
        return proc.returncode

    @staticmethod
    def _kill_group(proc):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def __exit__(self, exc_type, exc, tb):
        for name in list(self.children):
            self.stop(name, timeout_s=5)
        if exc_type is not None:
            for name, (proc, log_path) in self.children.items():
                with open(log_path, errors="replace") as f:
                    lines = f.read().splitlines()[-25:]
                print("---- %s (exit %s), last lines of %s" % (name, proc.returncode, log_path))
                print("\n".join(lines))
        return False


def start_coalesce_server(procs, name, server_binary, extra_flags, attempts=3):
    """Starts coalesce-server on free ports; returns (Popen, grpc_port, metrics_port). Retries
    with new ports when the first choice was taken in the meantime."""
    for attempt in range(attempts):
        grpc_port, metrics_port = free_port(), free_port()
        if grpc_port == metrics_port:
            continue
        proc_name = name if attempt == 0 else "%s-try%d" % (name, attempt + 1)
        proc = procs.start(proc_name, [
            server_binary,
            "--grpc_address=127.0.0.1:%d" % grpc_port,
            "--metrics_address=127.0.0.1:%d" % metrics_port,
        ] + list(extra_flags))
        if proc_name != name:
            procs.children[name] = procs.children.pop(proc_name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if port_open(grpc_port) and port_open(metrics_port) and proc.poll() is None:
                return proc, grpc_port, metrics_port
            time.sleep(0.05)
        if proc.poll() is None:
            raise AssertionError("%s did not start within 60 s" % name)
        log("%s exited at start (%s); retrying on other ports" % (name, proc.returncode))
    raise AssertionError("%s could not start in %d attempts" % (name, attempts))


def scrape(metrics_port):
    """{(name, frozenset(labels)): value} from a Prometheus text page."""
    samples = {}
    for line in http_get("http://127.0.0.1:%d/metrics" % metrics_port).splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        pairs = []
        for item in filter(None, labels.rstrip("}").split(",")):
            key, _, val = item.partition("=")
            pairs.append((key, val.strip('"')))
        samples[(name, frozenset(pairs))] = float(value)
    return samples


def find_protoc(given=None):
    return given or shutil.which("protoc") or skip("protoc is not installed")


def load_messages(protoc, proto_files=("inference.proto", "health.proto")):
    """Compiles proto/*.proto into a descriptor set; returns {full message name: class}."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto_dir = os.path.join(REPO_ROOT, "proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "protos.desc")
        cmd = [protoc, "--include_imports", "--descriptor_set_out=" + out, "-I", proto_dir]
        cmd += list(proto_files)
        result = subprocess.run(cmd, capture_output=True, text=True)
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
    classes = {}
    for file_proto in file_set.file:
        for message in file_proto.message_type:
            full = "%s.%s" % (file_proto.package, message.name)
            classes[full] = get_class(pool.FindMessageTypeByName(full))
    return classes


def grpc_channel(port, max_message_bytes=80 << 20):
    """An insecure channel to 127.0.0.1:port that ignores proxy settings."""
    import grpc

    return grpc.insecure_channel("127.0.0.1:%d" % port, options=[
        ("grpc.enable_http_proxy", 0),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_retries", 0),  # the tests count every attempt themselves
    ])


def unary(channel, messages, method, request_type, response_type):
    """A callable for one unary method, e.g. ('/inference.GRPCInferenceService/ModelInfer')."""
    return channel.unary_unary(method,
                               request_serializer=messages[request_type].SerializeToString,
                               response_deserializer=messages[response_type].FromString)


def health_serving(channel, messages, timeout_s=1.0):
    check = unary(channel, messages, "/grpc.health.v1.Health/Check",
                  "grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse")
    response = check(messages["grpc.health.v1.HealthCheckRequest"](), timeout=timeout_s)
    return response.status == 1  # SERVING
