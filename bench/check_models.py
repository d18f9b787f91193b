#!/usr/bin/env python3
"""Checks that coalesce-server serves bench/make_models.py's models, and batches them faithfully.

    python3 bench/check_models.py --server=build/server/coalesce-server [--repo=DIR]
        [--models resnet50,encoder,encoder_padded] [--protoc=protoc]

Without --repo it writes small variants into a temporary folder (a 2-layer encoder of hidden
64, max_batch_size 4; ResNet-50 is full size, and left out with a note when torchvision is
missing), then starts coalesce-server on them (CPU, fixed batch policy with a long queue delay,
so that requests sent together are batched together) and, for each model:
  1. sends REQUESTS single-sample requests one at a time (each runs alone: batch 1),
  2. sends the same requests all at once, and checks from the server's /metrics that a batch
     of more than one sample ran, and that every answer equals its answer alone within
     TOLERANCE (batched matrix products may sum in another order).
The encoder's requests come in two lengths (12 and 7 tokens, padding at the end of some): only
equal lengths share a batch, and each length must still answer as alone. encoder_padded is the
same model with padded batching declared (make_models.py --encoder_padding, buckets 8,16): the
two lengths may share one batch, padded, and must still answer as alone.
Exits 0 when every check passed, 1 otherwise. It is the ctest bench_models_check.
"""
import argparse
import concurrent.futures
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
from python_batching_server import find_protoc, load_messages  # noqa: E402

REQUESTS = 4
TOLERANCE = 1e-4  # absolute, on outputs of magnitude ~1 (logits of random weights, tanh)
SERVICE = "/inference.GRPCInferenceService/"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, address, messages):
        self.m = messages
        self.channel = grpc.insecure_channel(address, options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)])
        self.infer = self.channel.unary_unary(
            SERVICE + "ModelInfer", request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=messages["ModelInferResponse"].FromString)
        self.model_ready = self.channel.unary_unary(
            SERVICE + "ModelReady", request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=messages["ModelReadyResponse"].FromString)

    def wait_ready(self, model, server, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit("coalesce-server exited with %d before it was ready" % server.returncode)
            try:
                if self.model_ready(self.m["ModelReadyRequest"](name=model), timeout=2).ready:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        raise SystemExit("model %s not ready after %ds" % (model, timeout_s))

    def request(self, model, tensors):
        """tensors: [(name, datatype, shape, raw bytes)]."""
        r = self.m["ModelInferRequest"](model_name=model)
        for name, datatype, shape, raw in tensors:
            t = r.inputs.add()
            t.name, t.datatype = name, datatype
            t.shape.extend(shape)
            r.raw_input_contents.append(raw)
        return r


def floats(response):
    raw = response.raw_output_contents[0]
    return struct.unpack("<%df" % (len(raw) // 4), raw)


def batch_totals(metrics_address, model):
    page = urllib.request.urlopen("http://%s/metrics" % metrics_address, timeout=5).read().decode()
    totals = {}
    for kind in ("sum", "count"):
        m = re.search(r'^coalesce_batch_size_%s\{[^}]*model="%s"[^}]*\} (\S+)$' % (kind, model),
                      page, re.M)
        totals[kind] = float(m.group(1)) if m else 0.0
    return totals["sum"], totals["count"]


def model_requests(client, model, rng):
    if model == "resnet50":
        return [client.request(model, [("input", "FP32", [1, 3, 224, 224], struct.pack(
            "<%df" % (3 * 224 * 224), *(rng.uniform(-1, 1) for _ in range(3 * 224 * 224))))])
            for _ in range(REQUESTS)]
    requests = []
    for i in range(REQUESTS):
        length = 12 if i % 2 == 0 else 7
        ids = [rng.randrange(30522) for _ in range(length)]
        mask = [1] * (length - i) + [0] * i  # some padding at the end, as a tokenizer pads
        requests.append(client.request(model, [
            ("input_ids", "INT64", [1, length], struct.pack("<%dq" % length, *ids)),
            ("attention_mask", "INT64", [1, length], struct.pack("<%dq" % length, *mask))]))
    return requests


def check_model(client, model, metrics_address, rng):
    requests = model_requests(client, model, rng)
    alone = []
    for r in requests:
        before = batch_totals(metrics_address, model)
        alone.append(floats(client.infer(r, timeout=60)))
        after = batch_totals(metrics_address, model)
        if (after[0] - before[0], after[1] - before[1]) != (1, 1):
            return "%s: a request sent alone ran in a batch of %s samples" % (model, after[0] - before[0])
    before = batch_totals(metrics_address, model)
    futures = [client.infer.future(r, timeout=60) for r in requests]
    together = [floats(f.result()) for f in futures]
    after = batch_totals(metrics_address, model)
    samples, batches = after[0] - before[0], after[1] - before[1]
    if samples != REQUESTS or batches >= REQUESTS:
        return "%s: %d requests sent together ran as %d batches of %d samples in all" % (
            model, REQUESTS, batches, samples)
    worst = max(abs(a - b) for x, y in zip(alone, together) for a, b in zip(x, y))
    if worst > TOLERANCE or any(len(x) != len(y) for x, y in zip(alone, together)):
        return "%s: batched answers differ from alone by up to %g (tolerance %g)" % (
            model, worst, TOLERANCE)
    print("%s: %d requests alone, then together in %d batches; answers (%d values each) equal "
          "within %g (worst %.2g)" % (model, REQUESTS, batches, len(alone[0]), TOLERANCE, worst))
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="coalesce-server binary")
    p.add_argument("--repo", default="", help="a repository already made (default: make one)")
    p.add_argument("--models", default="resnet50,encoder")
    p.add_argument("--protoc", default="")
    p.add_argument("--ready_timeout_s", type=int, default=180)
    args = p.parse_args()
    models = [m for m in args.models.split(",") if m]
    messages = load_messages(os.path.join(os.path.dirname(HERE), "proto"), find_protoc(args.protoc))

    with tempfile.TemporaryDirectory() as tmp:
        repo = args.repo
        if not repo:
            repo = os.path.join(tmp, "repo")
            if "resnet50" in models:
                try:
                    import torchvision  # noqa: F401
                except ImportError:
                    print("resnet50: skipped, torchvision is not installed (python3-torchvision)")
                    models.remove("resnet50")
            made = [m for m in models if m != "encoder_padded"]
            if "encoder_padded" in models and "encoder" not in made:
                made.append("encoder")
            padding = (["--encoder_padding", "--encoder_pad_buckets", "8,16"]
                       if "encoder_padded" in models else [])
            subprocess.run([sys.executable, os.path.join(HERE, "make_models.py"), repo,
                            "--models", ",".join(made)] + padding + ["--encoder_layers", "2",
                            "--encoder_hidden", "64", "--encoder_heads", "4",
                            "--max_batch_size", str(REQUESTS)], check=True)
        grpc_address = "127.0.0.1:%d" % free_port()
        metrics_address = "127.0.0.1:%d" % free_port()
        log = open(os.path.join(tmp, "server.log"), "w+")
        server = subprocess.Popen(
            [args.server, "--model_repository=" + repo, "--grpc_address=" + grpc_address,
             "--metrics_address=" + metrics_address, "--device=cpu", "--batch_policy=fixed",
             "--max_queue_delay_us=500000", "--drain_timeout=2s"], stdout=log, stderr=log)
        failures = []
        try:
            client = Client(grpc_address, messages)
            rng = random.Random(7)
            for model in models:
                client.wait_ready(model, server, args.ready_timeout_s)
                failure = check_model(client, model, metrics_address, rng)
                if failure:
                    failures.append(failure)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            if failures or server.returncode not in (0, -15):
                log.seek(0)
                sys.stderr.write(log.read()[-4000:])
    for failure in failures:
        print("FAILED: " + failure)
    print("%d passed, %d failed" % (len(models) - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
