#!/usr/bin/python3
"""End to end: 3 coalesce replicas behind a real nginx grpc_pass (deploy/nginx/coalesce.conf); one
replica gets SIGTERM under load, and no accepted request is lost or answered twice.

  nginx_replicas_test.py --server build/server/coalesce-server [--nginx /usr/sbin/nginx]

Set-up: 3 coalesce-server replicas (echo backend, 10 s drain timeout; replica 0 with a 200 ms
batching delay so that it certainly holds calls when it gets SIGTERM, the others 10 ms) on free
loopback ports; nginx in the foreground
with deploy/nginx/coalesce.conf, its upstream servers and listen port rewritten, inside a
generated nginx.conf that logs every call (request id, attempt, replica, gRPC status).

Load: 8 client threads (Python grpcio, one channel through nginx) send ModelInfer calls without
pause. Every logical request has a unique id and 32 KiB of random input; the echo backend returns
the input, so a correct answer is byte-for-byte the input, with the request's id.

Retry rule (the client's, as deploy/nginx/coalesce.conf documents): an attempt that fails with
UNAVAILABLE is retried (backoff 10 ms doubling to 200 ms, at most 30 attempts). UNAVAILABLE here
means "not accepted": a draining replica refuses new calls with it, and nginx answers it when it
cannot reach a replica before sending the call (nginx itself retries those on another replica,
and never re-sends a call that reached one). This client also retries CANCELLED, which it never
causes itself: gRPC core answers CANCELLED to a call that starts after grpc::Server::Shutdown()
has begun (Server::CallData::StartNewRpc zombifies it; no handler runs). A call nginx sends on a
kept-alive connection in the instant after the replica's SIGTERM meets exactly that. Inference is
a pure function of its input, so retrying either is safe. Any other code is final.

2 s into the load, replica 0 gets SIGTERM; the load goes on until 2 s after it has exited.

Asserts:
- replica 0 exits with code 0 within its drain timeout (+5 s); the calls it held when SIGTERM was
  sent all completed OK with the right bytes: 4 probe calls sent straight to replica 0 at least
  50 ms before the signal and still unanswered when it went out (its 200 ms batching delay holds
  them), so the drain is always exercised; its own metrics count no CANCELLED call (a call is
  counted once its handler ran, so a CANCELLED there would be an accepted call dropped);
- every logical request ended with exactly one OK attempt, whose output bytes equal its input
  and whose response id equals its request id; every other attempt failed with UNAVAILABLE, or
  with CANCELLED answered by replica 0 after its SIGTERM (the gRPC core race above; counted and
  printed; --strict fails on it too);
- nginx's log has exactly one grpc-status 0 line per logical request, and none for any other
  (no answer produced that the client did not get);
- for each surviving replica: the OK count in its own /metrics, the OK attempts the client saw
  answered by it (x-coalesce-upstream header), and nginx's OK lines for it are the same number;
  for replica 0, the last OK count scraped from it (every 20 ms until it exits) is at most what
  the clients got from it (load through nginx + probes);
- load went on after replica 0 exited: requests completed OK on the other two;
- a message just over the servers' 64 MiB limit passes nginx (client_max_body_size) and is
  refused by the replica itself with RESOURCE_EXHAUSTED, not by nginx;
- replicas 1 and 2 also exit 0 on SIGTERM afterwards, and with no replica left nginx answers
  UNAVAILABLE "no coalesce replica available" (the config's error_page), which clients retry.
Never asserts an absolute speed.
"""

import argparse
import collections
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402

REPLICAS = 3
CLIENT_THREADS = 8
DRAIN_TIMEOUT_S = 10
SIGTERM_AFTER_S = 2
LOAD_AFTER_EXIT_S = 2
MAX_ATTEMPTS = 30
# Batching delay of replica 0 and of the others. Replica 0 holds every call 200 ms, so calls
# are certainly inside it when it gets SIGTERM; the others answer within ~10 ms.
QUEUE_DELAY_US = (200000, 10000)
# A call sent this long before SIGTERM has certainly reached replica 0 (loopback, one nginx hop).
ARRIVED_S = 0.05
PROBES = 4
# Codes the client retries: UNAVAILABLE, and CANCELLED (this client never cancels a call and
# its deadline, 30 s, would give DEADLINE_EXCEEDED; see the module comment).
RETRIED = ("UNAVAILABLE", "CANCELLED")
SAMPLE_BYTES = 32 * 256 * 4
INFER = "/inference.GRPCInferenceService/ModelInfer"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="coalesce-server binary")
    p.add_argument("--nginx", help="nginx binary (default: from PATH or /usr/sbin)")
    p.add_argument("--protoc", help="protoc binary (default: from PATH)")
    p.add_argument("--config", default=os.path.join(u.REPO_ROOT, "deploy/nginx/coalesce.conf"))
    p.add_argument("--strict", action="store_true",
                   help="fail on CANCELLED answers from the draining replica too")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return p.parse_args()


# --------------------------------------------------------------------------------------------
# nginx

def nginx_conf(tmp, snippet_path, listen_port, replica_ports):
    """deploy/nginx/coalesce.conf with its replicas and listen port replaced, in a main config
    that keeps every file inside tmp."""
    with open(snippet_path) as f:
        snippet = f.read()
    lines, replaced = [], False
    for line in snippet.splitlines():
        if re.match(r"\s*server 127\.0\.0\.1:\d+ ", line):
            if not replaced:
                options = line.split(None, 2)[2]  # max_fails=... fail_timeout=...;
                lines += ["    server 127.0.0.1:%d %s" % (p, options) for p in replica_ports]
                replaced = True
            continue
        lines.append(line)
    assert replaced, "no 'server 127.0.0.1:PORT ...' lines in the upstream of " + snippet_path
    snippet, listens = re.subn(r"listen 127\.0\.0\.1:\d+ http2;",
                               "listen 127.0.0.1:%d http2;" % listen_port, "\n".join(lines))
    assert listens == 1, "expected one 'listen 127.0.0.1:PORT http2;' in " + snippet_path
    temp_paths = "\n".join("    %s_temp_path %s;" % (kind, os.path.join(tmp, kind))
                           for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root root;" if os.geteuid() == 0 else ""  # workers write the temp folders
    conf = """%s
worker_processes 1;
pid %s;
error_log %s info;
events { worker_connections 1024; }
http {
    log_format calls '$msec id="$http_x_request_id" attempt="$http_x_attempt" uri="$request_uri" '
                     'status="$status" upstream="$upstream_addr" '
                     'upstream_status="$upstream_status" grpc_header="$upstream_http_grpc_status" '
                     'grpc_trailer="$upstream_trailer_grpc_status" '
                     'request_time="$request_time" upstream_time="$upstream_response_time"';
    access_log %s calls;
%s
%s
}
""" % (user, os.path.join(tmp, "nginx.pid"), os.path.join(tmp, "nginx-error.log"),
       os.path.join(tmp, "access.log"), temp_paths, snippet)
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def parse_access_log(path):
    """[{id, attempt, upstream, grpc}] for ModelInfer lines; upstream is the replica that
    answered (the last of nginx's tries), grpc the status it sent (header or trailer)."""
    entries = []
    with open(path) as f:
        for line in f:
            fields = dict(re.findall(r'(\w+)="([^"]*)"', line))
            if fields.get("uri") != INFER:
                continue
            grpc = fields["grpc_trailer"]
            if grpc == "-":  # a trailers-only answer: the status came in the headers
                grpc = fields["grpc_header"]
            entries.append({"id": fields["id"], "attempt": fields["attempt"],
                            "upstream": fields["upstream"].split(",")[-1].strip(),
                            "grpc": grpc, "line": line.strip()})
    return entries


# --------------------------------------------------------------------------------------------
# Client

class Attempt:
    __slots__ = ("request_id", "number", "start", "end", "code", "upstream", "correct")

    def __init__(self, request_id, number, start):
        self.request_id, self.number, self.start = request_id, number, start
        self.end, self.code, self.upstream, self.correct = None, None, None, False


class LoadClient:
    """CLIENT_THREADS threads sending ModelInfer through nginx until stop(), retrying
    UNAVAILABLE; every attempt is recorded."""

    def __init__(self, messages, port):
        import grpc

        self.grpc = grpc
        self.messages = messages
        self.channel = u.grpc_channel(port)
        self.infer = u.unary(self.channel, messages, INFER, "inference.ModelInferRequest",
                             "inference.ModelInferResponse")
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.attempts = []           # every attempt, in completion order
        self.requests = {}           # request id -> final Attempt (or None if it gave up)
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True)
                        for i in range(CLIENT_THREADS)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self, timeout_s=60):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout_s)
        assert not any(t.is_alive() for t in self.threads), "client threads did not finish"

    def _request(self, request_id, payload):
        request = self.messages["inference.ModelInferRequest"]()
        request.model_name = "demo"
        request.id = request_id
        tensor = request.inputs.add()
        tensor.name, tensor.datatype = "INPUT0", "FP32"
        tensor.shape.extend([1, 32, 256])
        request.raw_input_contents.append(payload)
        return request

    def _loop(self, thread_index):
        sequence = 0
        while not self.stopping.is_set():
            request_id = "t%d-r%d" % (thread_index, sequence)
            sequence += 1
            payload = os.urandom(SAMPLE_BYTES)
            self.requests[request_id] = self._send_with_retries(request_id, payload)

    def _send_with_retries(self, request_id, payload):
        request = self._request(request_id, payload)
        backoff = 0.01
        for number in range(1, MAX_ATTEMPTS + 1):
            attempt = Attempt(request_id, number, time.time())
            metadata = (("x-request-id", request_id), ("x-attempt", str(number)))
            try:
                response, call = self.infer.with_call(request, timeout=30, metadata=metadata)
                attempt.code = "OK"
                attempt.upstream = dict(call.initial_metadata()).get("x-coalesce-upstream")
                attempt.correct = (response.id == request_id
                                   and list(response.raw_output_contents) == [payload])
            except self.grpc.RpcError as e:
                attempt.code = e.code().name
                # A trailers-only answer carries nginx's header among the trailers.
                headers = dict(tuple(e.initial_metadata() or ())
                               + tuple(e.trailing_metadata() or ()))
                attempt.upstream = headers.get("x-coalesce-upstream")
            attempt.end = time.time()
            if attempt.upstream:
                attempt.upstream = attempt.upstream.split(",")[-1].strip()
            with self.lock:
                self.attempts.append(attempt)
            if attempt.code not in RETRIED:
                return attempt
            time.sleep(backoff)
            backoff = min(backoff * 2, 0.2)
        return None


class Probes:
    """PROBES calls sent straight to replica 0, for the drain check: SIGTERM goes out only while
    a round of them, sent ARRIVED_S ago, is still unanswered, so they are certainly inside."""

    def __init__(self, messages, port):
        self.client = LoadClient(messages, port)  # its channel and request builder only
        self.rounds = 0
        self.results = []  # (request id, code, correct, answered at)
        self.lock = threading.Lock()

    def send_until_inside(self, timeout_s=20):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.rounds += 1
            futures = []
            for k in range(PROBES):
                request_id = "probe-%d-%d" % (self.rounds, k)
                payload = os.urandom(SAMPLE_BYTES)
                future = self.client.infer.future(self.client._request(request_id, payload),
                                                  timeout=30)
                future.add_done_callback(
                    lambda f, rid=request_id, data=payload: self._done(f, rid, data))
                futures.append(future)
            time.sleep(ARRIVED_S)
            if not any(f.done() for f in futures):
                return futures
            for f in futures:  # this round's batch closed already: wait, then try again
                f.exception(timeout=30)
        raise AssertionError("no round of probes stayed inside replica 0 for %.0f ms"
                             % (ARRIVED_S * 1e3))

    def _done(self, future, request_id, payload):
        answered = time.time()
        error = future.exception()
        if error is None:
            response = future.result()
            correct = (response.id == request_id
                       and list(response.raw_output_contents) == [payload])
            entry = (request_id, "OK", correct, answered)
        else:
            entry = (request_id, error.code().name, False, answered)
        with self.lock:
            self.results.append(entry)


def no_replica_answer(messages, port):
    """(code, details) of a call through nginx once every replica is gone."""
    client = LoadClient(messages, port)
    try:
        client.infer(client._request("after-all-stopped", b"\0" * SAMPLE_BYTES), timeout=10)
        return ("OK", "")
    except client.grpc.RpcError as e:
        return (e.code().name, e.details())
    finally:
        client.channel.close()


def oversized_code(messages, port):
    """Sends ModelInfer with a message just over 64 MiB through nginx; returns the code."""
    client = LoadClient(messages, port)
    request = client._request("oversized", b"\0" * (64 << 20))
    try:
        client.infer(request, timeout=30)
        return "OK"
    except client.grpc.RpcError as e:
        u.log("oversized call: %s %s" % (e.code().name, e.details()))
        return e.code().name
    finally:
        client.channel.close()


# --------------------------------------------------------------------------------------------
# The test

def count_by_code(metrics_port):
    """{gRPC code name: requests answered} from a replica's coalesce_requests_total."""
    counts = {}
    for (name, labels), value in u.scrape(metrics_port).items():
        labels = dict(labels)
        if name == "coalesce_requests_total" and labels.get("model") == "demo":
            counts[labels["code"]] = int(value)
    return counts


def ok_count(metrics_port):
    return count_by_code(metrics_port)["OK"]


class LastScrape(threading.Thread):
    """Scrapes a replica's counts by code every 20 ms until /metrics stops answering."""

    def __init__(self, metrics_port):
        super().__init__(daemon=True)
        self.metrics_port, self.last, self.last_by_code = metrics_port, None, {}

    def run(self):
        while True:
            try:
                self.last_by_code = count_by_code(self.metrics_port)
                self.last = self.last_by_code["OK"]
            except Exception:  # noqa: BLE001 (the endpoint went away with the process)
                return
            time.sleep(0.02)


def check(name, ok, detail, failures):
    u.log("%-4s %s: %s" % ("ok" if ok else "FAIL", name, detail))
    if not ok:
        failures.append("%s: %s" % (name, detail))


def run(args, tmp):
    nginx = u.require_program("nginx", args.nginx)
    messages = u.load_messages(u.find_protoc(args.protoc))
    failures = []
    with u.Processes(tmp) as procs:
        replicas = []  # (name, Popen, grpc_port, metrics_port)
        for i in range(REPLICAS):
            name = "replica%d" % i
            proc, grpc_port, metrics_port = u.start_coalesce_server(
                procs, name, args.server,
                ["--backend=echo", "--max_queue_delay_us=%d" % QUEUE_DELAY_US[i > 0],
                 "--drain_timeout=%ds" % DRAIN_TIMEOUT_S])
            replicas.append((name, proc, grpc_port, metrics_port))
        for name, _, grpc_port, _ in replicas:
            channel = u.grpc_channel(grpc_port)
            u.wait_until(lambda: u.health_serving(channel, messages), 30, name + " SERVING")
            channel.close()

        nginx_port = u.free_port()
        conf = nginx_conf(tmp, args.config, nginx_port, [r[2] for r in replicas])
        procs.start("nginx", [nginx, "-p", tmp, "-c", conf, "-e",
                              os.path.join(tmp, "nginx-error.log"), "-g", "daemon off;"])
        # Connect only once nginx listens: a refused channel waits out gRPC's reconnect backoff.
        u.wait_until(lambda: u.port_open(nginx_port), 30, "nginx to listen")
        channel = u.grpc_channel(nginx_port)
        u.wait_until(lambda: u.health_serving(channel, messages), 30, "health through nginx")
        channel.close()

        # A message over the limit: nginx must pass it, the replica refuses it.
        u.log("sending a message of 64 MiB + 44 bytes through nginx")
        code = oversized_code(messages, nginx_port)
        check("64 MiB + message through nginx", code == "RESOURCE_EXHAUSTED",
              "code %s (RESOURCE_EXHAUSTED from the replica expected; nginx's 413 would be "
              "UNKNOWN)" % code, failures)

        victim_name, victim, victim_grpc, victim_metrics = replicas[0]
        victim_addr = "127.0.0.1:%d" % victim_grpc
        client = LoadClient(messages, nginx_port)
        load_start = time.time()
        client.start()
        time.sleep(SIGTERM_AFTER_S)
        last_scrape = LastScrape(victim_metrics)
        last_scrape.start()
        u.wait_until(lambda: last_scrape.last is not None, 10, "a first scrape of replica 0")
        probes = Probes(messages, victim_grpc)
        probe_futures = probes.send_until_inside()
        sigterm_at = time.time()
        u.log("SIGTERM to %s (%s)" % (victim_name, victim_addr))
        victim.send_signal(signal.SIGTERM)
        try:
            exit_code = victim.wait(timeout=DRAIN_TIMEOUT_S + 5)
        except Exception:  # noqa: BLE001 (TimeoutExpired: reported below)
            exit_code = None
        exited_at = time.time()
        u.log("%s exited with %s after %.2f s" % (victim_name, exit_code, exited_at - sigterm_at))
        time.sleep(LOAD_AFTER_EXIT_S)
        for f in probe_futures:
            f.exception(timeout=30)
        client.stop()
        client.channel.close()
        probes.client.channel.close()
        load_end = time.time()
        last_scrape.join(5)

        survivors = {"127.0.0.1:%d" % r[2]: ok_count(r[3]) for r in replicas[1:]}
        # The other two drain too; then nginx has no replica left and says so in gRPC terms.
        survivor_exits = [procs.stop(r[0], timeout_s=DRAIN_TIMEOUT_S + 5) for r in replicas[1:]]
        none_left = no_replica_answer(messages, nginx_port)
        procs.stop("nginx")
        entries = parse_access_log(os.path.join(tmp, "access.log"))

    attempts, requests = client.attempts, client.requests
    codes = collections.Counter(a.code for a in attempts)
    u.log("load %.1f s: %d requests, %d attempts, codes %s"
          % (load_end - load_start, len(requests), len(attempts), dict(codes)))

    check("replica 0 exit code after SIGTERM", exit_code == 0,
          "%s (within %d s)" % (exit_code, DRAIN_TIMEOUT_S + 5), failures)
    inside = [r for r in probes.results if r[3] > sigterm_at]
    check("probes inside replica 0 on SIGTERM completed OK with their own bytes",
          len(inside) >= 1 and all(r[1] == "OK" and r[2] for r in inside),
          "%d of %d probes of the last round answered after SIGTERM: %s"
          % (len(inside), PROBES, [(r[0], r[1], r[2]) for r in inside]), failures)
    earlier_probes = [r for r in probes.results if r[3] <= sigterm_at]
    check("earlier probe rounds completed OK", all(r[1] == "OK" and r[2] for r in earlier_probes),
          "%d probes in %d rounds" % (len(probes.results), probes.rounds), failures)
    through_nginx = [a for a in attempts if a.upstream == victim_addr
                     and a.start < sigterm_at - ARRIVED_S and a.end > sigterm_at]
    u.log("note: %d calls through nginx were inside replica 0 on SIGTERM: codes %s"
          % (len(through_nginx), dict(collections.Counter(a.code for a in through_nginx))))

    gave_up = [rid for rid, final in requests.items() if final is None]
    check("every request answered in at most %d attempts" % MAX_ATTEMPTS, not gave_up,
          "%d gave up: %s" % (len(gave_up), gave_up[:5]), failures)
    ok_by_request = collections.Counter(a.request_id for a in attempts if a.code == "OK")
    not_once = {rid: n for rid, n in ok_by_request.items() if n != 1}
    missing = [rid for rid in requests if ok_by_request[rid] != 1]
    check("exactly one OK answer per request", not not_once and not missing,
          "%d requests, %d with != 1 OK answer" % (len(requests), len(missing)), failures)
    wrong = [a.request_id for a in attempts if a.code == "OK" and not a.correct]
    check("every OK answer is the request's own input and id", not wrong,
          "%d wrong: %s" % (len(wrong), wrong[:5]), failures)
    # CANCELLED is excused only where gRPC core produces it for a call that was never accepted:
    # answered by replica 0 after its SIGTERM (a call that starts once grpc::Server::Shutdown()
    # has begun is cancelled before any handler sees it).
    shutdown_race = [a for a in attempts if a.code == "CANCELLED" and a.upstream == victim_addr
                     and a.end >= sigterm_at]
    other = [a for a in attempts if a.code not in ("OK", "UNAVAILABLE")
             and (args.strict or a not in shutdown_race)]
    check("no failure but UNAVAILABLE%s" % ("" if args.strict else
                                            " or CANCELLED by replica 0's Shutdown()"),
          not other, "codes %s; %d CANCELLED by replica 0 after SIGTERM; unexcused: %s"
          % (dict(codes), len(shutdown_race),
             [(a.request_id, a.code, a.upstream) for a in other[:5]]), failures)

    nginx_ok = collections.Counter(e["id"] for e in entries if e["grpc"] == "0")
    check("nginx logged one grpc-status 0 per request and no other",
          set(nginx_ok) == set(requests) and all(n == 1 for n in nginx_ok.values()),
          "%d OK lines for %d ids, %d requests" % (sum(nginx_ok.values()), len(nginx_ok),
                                                   len(requests)), failures)

    client_ok_by = collections.Counter(a.upstream for a in attempts if a.code == "OK")
    nginx_ok_by = collections.Counter(e["upstream"] for e in entries if e["grpc"] == "0")
    for addr, server_ok in survivors.items():
        check("OK count of surviving replica %s: server = client = nginx" % addr,
              server_ok == client_ok_by[addr] == nginx_ok_by[addr],
              "server %d, client %d, nginx %d" % (server_ok, client_ok_by[addr], nginx_ok_by[addr]),
              failures)
    probe_ok = sum(1 for r in probes.results if r[1] == "OK")
    check("replica 0's last scraped OK count <= OK answers clients got from it",
          last_scrape.last is not None and last_scrape.last <= client_ok_by[victim_addr] + probe_ok,
          "last scrape %s; load client %d + probes %d; nginx %d"
          % (last_scrape.last, client_ok_by[victim_addr], probe_ok, nginx_ok_by[victim_addr]),
          failures)
    after_exit = [a for a in attempts if a.code == "OK" and a.start > exited_at]
    check("load served by the other replicas after replica 0 exited",
          len(after_exit) > 0 and all(a.upstream != victim_addr for a in after_exit),
          "%d OK calls started after the exit, %d of them on replica 0"
          % (len(after_exit), sum(a.upstream == victim_addr for a in after_exit)), failures)
    # The server counts a call by code only once its handler ran; calls killed by gRPC core at
    # Shutdown() never reach it. The last scrape is final when its OK count covers every OK the
    # clients got from replica 0.
    cancelled_inside = last_scrape.last_by_code.get("CANCELLED", 0)
    final = last_scrape.last == client_ok_by[victim_addr] + probe_ok
    check("replica 0 cancelled no call it had accepted (its CANCELLED count, last scrape)",
          cancelled_inside == 0, "%d (last scrape %s final)" % (cancelled_inside,
                                                                "is" if final else "may not be"),
          failures)
    check("replicas 1 and 2 exit 0 on SIGTERM after the load", survivor_exits == [0, 0],
          str(survivor_exits), failures)
    check("with no replica left, nginx answers UNAVAILABLE (error_page), not HTTP 502",
          none_left == ("UNAVAILABLE", "no coalesce replica available"), str(none_left), failures)
    retried = sum(1 for a in attempts if a.code == "UNAVAILABLE")
    u.log("note: %d attempts were refused with UNAVAILABLE and retried by the client" % retried)
    u.log("note: replica 0's last scrape by code: %s" % {c: n for c, n in
                                                         last_scrape.last_by_code.items() if n})
    for a in attempts:
        if a.code != "OK":
            nginx_lines = [e["line"] for e in entries
                           if e["id"] == a.request_id and e["attempt"] == str(a.number)]
            u.log("note: %s attempt %d: %s from %s, sent %+.4f s, answered %+.4f s after SIGTERM;"
                  " nginx: %s" % (a.request_id, a.number, a.code, a.upstream, a.start - sigterm_at,
                                  a.end - sigterm_at, nginx_lines))
    return failures


def main():
    args = parse_args()
    tmp = tempfile.mkdtemp(prefix="coalesce-nginx-e2e-")
    os.chmod(tmp, 0o755)
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
