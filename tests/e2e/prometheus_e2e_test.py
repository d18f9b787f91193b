#!/usr/bin/python3
"""End to end: a real Prometheus scrapes coalesce-server under load, and what its recording rules
say agrees with what the load generator measured.

  prometheus_e2e_test.py --server build/server/coalesce-server --bench build/client/coalesce-bench

1. coalesce-server (echo backend, 40 ms batching delay) on free loopback ports. The delay makes
   each request's time mostly server time, even when the client is short of CPU, and keeps the
   load light (about C / 40 ms = 200 requests/s).
2. Debian's prometheus scraping it every second, evaluating deploy/prometheus/rules.yml every
   second with the rules' [1m] windows shortened to [6s] (the load lasts 12 s).
3. coalesce-bench: closed loop, concurrency 8, 2 s warm-up + 10 s measured, --json.
4. Prometheus's HTTP API, at a time inside the measured window, for the recorded series.

Checks and their bounds (C = concurrency, values from coalesce-bench unless said otherwise):
- samples/s from model:coalesce_inferences:rate1m within +-25% of coalesce-bench's samples/s,
  and OK requests/s from model_code:coalesce_requests:rate1m within +-25% of its requests/s:
  two counters sampled once a second over 6 s, against a client's count over 10 s.
- p99 and p50 latency from the histogram rules, each at most 2 x the client's p99 and p50, and
  at least 0.4 x the client's p50. Upper: a request spends no longer in the server than the
  client waited for it, so each server quantile is at most the client's, and the histogram's
  buckets double, so an interpolated quantile is within a factor 2 of the true one. Lower: a
  server quantile q >= 0.5 is at least the server's median, which is at least 0.8 x the client's
  median while the client's own part (stack, loopback, scheduling) stays under 20% of a median
  request dominated by the 40 ms delay; halved again for the bucket. The client's p99 is not
  used below: on a busy 2-core machine the client's own tail (its threads waiting for a core)
  can be several times the server's.
- no request answered with anything but OK (not-OK ratio rule is 0, bench counted 0 errors).
- mean batch size (rule) in [1, C]: a closed loop of C clients cannot fill more; and equal,
  within 10%, to the samples rate over the batches rate (two rules that must agree).
- mean requests inside the server (Little's law rule, the autoscaler's signal) in
  [0.5 C, 1.25 C]: at most C are outstanding (+25% for the rate's sampling), and at least half
  of a request's mean time is spent in the server (its 40 ms batching delay).
- resident memory: when the server exports a resident-memory series
  ((coalesce_)process_resident_memory_bytes), its value within [0.5 x, 2 x] of VmRSS in
  /proc/<pid>/status. Not exported: reported, and a failure only with --require_memory.
- the server exits 0 on SIGTERM afterwards.
Never asserts an absolute speed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402

CONCURRENCY = 8
WARMUP_S = 2
DURATION_S = 10
RULE_WINDOW = "6s"        # replaces the rules' [1m]; must fit inside the load (12 s)
QUEUE_DELAY_US = 40000    # makes the server's share of the latency dominate


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="coalesce-server binary")
    p.add_argument("--bench", required=True, help="coalesce-bench binary")
    p.add_argument("--prometheus", help="prometheus binary (default: from PATH)")
    p.add_argument("--rules", default=os.path.join(u.REPO_ROOT, "deploy/prometheus/rules.yml"))
    p.add_argument("--require_memory", action="store_true",
                   help="fail when no resident-memory series is exported")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return p.parse_args()


class PrometheusApi:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def ready(self):
        return "Ready" in u.http_get(self.base + "/-/ready")

    def query(self, expr, at=None):
        """[(labels, value)] of an instant query."""
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        body = json.loads(u.http_get(self.base + "/api/v1/query?" + urllib.parse.urlencode(params)))
        assert body["status"] == "success", body
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    def one(self, expr, at):
        result = self.query(expr, at)
        assert len(result) == 1, "expected one series for %s at %.3f, got %r" % (expr, at, result)
        return result[0][1]


def write_prometheus_files(tmp, rules_path, metrics_port):
    with open(rules_path) as f:
        rules = f.read()
    shortened, count = re.subn(r"\[1m\]", "[%s]" % RULE_WINDOW, rules)
    assert count >= 5, "expected the rules to use [1m] windows; found %d" % count
    with open(os.path.join(tmp, "rules.yml"), "w") as f:
        f.write(shortened)
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write("""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - rules.yml
scrape_configs:
  - job_name: coalesce
    static_configs:
      - targets: ["127.0.0.1:%d"]
""" % metrics_port)
    return os.path.join(tmp, "prometheus.yml")


def resident_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


def check_within(name, got, low, high, failures):
    ok = low <= got <= high
    u.log("%-4s %-44s %12.6g in [%.6g, %.6g]" % ("ok" if ok else "FAIL", name, got, low, high))
    if not ok:
        failures.append("%s = %.6g, expected in [%.6g, %.6g]" % (name, got, low, high))


def run(args, tmp):
    prometheus = u.require_program("prometheus", args.prometheus)
    failures = []
    with u.Processes(tmp) as procs:
        server, grpc_port, metrics_port = u.start_coalesce_server(
            procs, "coalesce-server", args.server,
            ["--backend=echo", "--max_queue_delay_us=%d" % QUEUE_DELAY_US, "--drain_timeout=5s"])

        config = write_prometheus_files(tmp, args.rules, metrics_port)
        prom_port = u.free_port()
        procs.start("prometheus", [
            prometheus, "--config.file=" + config,
            "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
            "--web.listen-address=127.0.0.1:%d" % prom_port,
            "--log.level=warn"])
        api = PrometheusApi(prom_port)
        u.wait_until(api.ready, 30, "prometheus /-/ready")
        u.wait_until(lambda: any(v == 1 for _, v in api.query('up{job="coalesce"}')), 30,
                     "prometheus to scrape coalesce-server")

        u.log("load: concurrency %d, %d s warm-up + %d s measured" % (CONCURRENCY, WARMUP_S,
                                                                      DURATION_S))
        started = time.time()
        bench = subprocess.run([
            args.bench, "--address=127.0.0.1:%d" % grpc_port, "--model=demo",
            "--concurrency=%d" % CONCURRENCY, "--warmup_s=%d" % WARMUP_S,
            "--duration_s=%d" % DURATION_S, "--channels=2", "--threads=2", "--json"],
            capture_output=True, text=True, timeout=DURATION_S + WARMUP_S + 40, env=u.clean_env())
        ended = time.time()
        assert bench.returncode == 0, "coalesce-bench failed (%d): %s" % (bench.returncode,
                                                                          bench.stderr)
        measured = json.loads(bench.stdout)[0]
        u.log("coalesce-bench: " + json.dumps(measured))
        assert measured["ok"] > 0 and measured["errors"] == 0, measured

        # A time whose window [at - 6 s - 1 s scrape lag, at] lies inside the load.
        at = ended - 1.5
        assert at - started >= 7.5 + 1, "load too short for the rule window"
        time.sleep(2)  # the evaluation at `at` has run; let any late one land too

        demo = '{model="demo"}'
        p99 = api.one("model:coalesce_request_duration_seconds:p99_rate1m" + demo, at)
        p50 = api.one("model:coalesce_request_duration_seconds:p50_rate1m" + demo, at)
        samples = api.one("model:coalesce_inferences:rate1m" + demo, at)
        ok_rate = api.one('model_code:coalesce_requests:rate1m{model="demo",code="OK"}', at)
        not_ok = api.one("model:coalesce_requests_not_ok:ratio_rate1m" + demo, at)
        mean_batch = api.one("model:coalesce_batch_size:mean_rate1m" + demo, at)
        batches = api.one("model:coalesce_batches:rate1m" + demo, at)
        in_server = api.one("instance_model:coalesce_requests_in_server:mean_rate1m" + demo, at)

        client_p99 = measured["p99_ms"] / 1e3
        client_p50 = measured["p50_ms"] / 1e3
        check_within("p99 latency (s), histogram rule", p99, 0.4 * client_p50, 2 * client_p99,
                     failures)
        check_within("p50 latency (s), histogram rule", p50, 0.4 * client_p50, 2 * client_p50,
                     failures)
        check_within("samples/s, inferences rule", samples, 0.75 * measured["samples_per_s"],
                     1.25 * measured["samples_per_s"], failures)
        check_within("OK requests/s, requests rule", ok_rate, 0.75 * measured["requests_per_s"],
                     1.25 * measured["requests_per_s"], failures)
        check_within("not-OK share, ratio rule", not_ok, 0, 0, failures)
        check_within("mean batch size, batch rule", mean_batch, 1, CONCURRENCY, failures)
        check_within("mean batch size / (samples/s / batches/s)", mean_batch / (samples / batches),
                     0.9, 1.1, failures)
        check_within("requests in server (Little's law rule)", in_server, 0.5 * CONCURRENCY,
                     1.25 * CONCURRENCY, failures)

        memory = api.query('{__name__=~"(coalesce_)?process_resident_memory_bytes",'
                           'job="coalesce"}', at=time.time())
        if memory:
            rss = resident_bytes(server.pid)
            check_within("resident memory (bytes) / VmRSS", memory[0][1] / rss, 0.5, 2, failures)
        else:
            message = ("resident memory: no process_resident_memory_bytes series is exported "
                       "by coalesce-server; not checked")
            u.log(("FAIL " if args.require_memory else "note ") + message)
            if args.require_memory:
                failures.append(message)

        code = procs.stop("coalesce-server", timeout_s=15)
        check_within("coalesce-server exit code after SIGTERM", code, 0, 0, failures)
    return failures


def main():
    args = parse_args()
    tmp = tempfile.mkdtemp(prefix="coalesce-prometheus-e2e-")
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
