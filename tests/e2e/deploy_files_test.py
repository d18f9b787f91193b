#!/usr/bin/python3
"""Checks the files in deploy/ with the programs that will read them, where they run here, and
by structure where they do not.

  deploy_files_test.py PART --server build/server/coalesce-server
  PART: prometheus | nginx | systemd | launchd | kubernetes | kserve | homebrew | docker | grafana

prometheus  promtool check config/rules; promtool test rules with hand-computed series (rates,
            histogram quantiles, mean batch size, Little's law); every coalesce_* name the rules
            read is exported by a live coalesce-server.
nginx       nginx -t on deploy/nginx/coalesce.conf inside a minimal main config.
systemd     systemd-analyze verify (ExecStart pointed at the built binary); TimeoutStopSec above
            --drain_timeout; the hardening options the unit promises are there; LimitNOFILE.
launchd     xmllint against Apple's plist DTD (embedded below; plutil runs only on macOS);
            plistlib parse; keys and value types of launchd.plist(5); ExitTimeOut above
            --drain_timeout; NumberOfFiles; install.sh parses (sh -n).
kubernetes  YAML parse of every manifest (python3-yaml); the Deployment, Services, HPA and PDB
            refer to each other and to the ports the server listens on; grace period above
            preStop + drain; flags file binds 0.0.0.0 and holds only flags the server knows;
            `kubectl kustomize` renders it where kubectl is installed; every manifest valid
            against the Kubernetes OpenAPI schemas (node + npm kubernetes-models, k8s_schema/).
kserve      deploy/kserve: the ServingRuntime valid against KServe's CRD schema (python3-jsonschema,
            schemas/servingruntime.schema.json) with no field the CRD would prune, its container
            valid as a Kubernetes Container; image and ports as the Dockerfile builds them; the
            example InferenceService names the runtime and a protocol it lists.
homebrew    packaging/homebrew/coalesce.rb: `ruby -c`; builds with Homebrew's pytorch, grpc,
            protobuf, abseil, spdlog and prometheus-cpp; the release URL carries the project
            version; its service block runs the installed server with etc/coalesce/server.flags.
            (Not run on a Mac: brew itself is absent here.)
docker      Dockerfile and packaging/docker (no container engine runs here): multi-stage, Debian 12
            build and Debian 12 slim run stage, the package installed in the run stage, a
            non-root USER, ports 8001/8002, a gRPC HEALTHCHECK with the installed client; the
            image's flag file binds every interface, serves /models, and holds only flags
            coalesce-server knows and every flag config/server.flags sets; the CUDA variant too.
grafana     JSON that Grafana imports (unique panel ids, grid positions, targets); every query
            parses as PromQL (promtool); every coalesce_* name is exported by a live server.
Exit 77 (skipped) when the program a part needs is missing.
"""

import argparse
import json
import os
import plistlib
import re
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402

DEPLOY = os.path.join(u.REPO_ROOT, "deploy")

# Apple's PropertyList-1.0.dtd, the document type every launchd plist declares.
PLIST_DTD = """<!ENTITY % plistObject "(array | data | date | dict | real | integer | string | true | false )" >
<!ELEMENT plist %plistObject;>
<!ATTLIST plist version CDATA "1.0" >
<!ELEMENT array (%plistObject;)*>
<!ELEMENT dict (key, %plistObject;)*>
<!ELEMENT key (#PCDATA)>
<!ELEMENT string (#PCDATA)>
<!ELEMENT data (#PCDATA)>
<!ELEMENT date (#PCDATA)>
<!ELEMENT true EMPTY>
<!ELEMENT false EMPTY>
<!ELEMENT real (#PCDATA)>
<!ELEMENT integer (#PCDATA)>
"""

# Top-level keys of launchd.plist(5) and their value types.
LAUNCHD_KEYS = {
    "Label": str, "Disabled": bool, "UserName": str, "GroupName": str, "inetdCompatibility": dict,
    "LimitLoadToHosts": list, "LimitLoadFromHosts": list, "LimitLoadToSessionType": (str, list),
    "LimitLoadToHardware": dict, "LimitLoadFromHardware": dict, "Program": str,
    "ProgramArguments": list, "EnableGlobbing": bool, "EnableTransactions": bool,
    "EnablePressuredExit": bool, "OnDemand": bool, "ServiceIPC": bool, "KeepAlive": (bool, dict),
    "RunAtLoad": bool, "RootDirectory": str, "WorkingDirectory": str,
    "EnvironmentVariables": dict, "Umask": int, "TimeOut": int, "ExitTimeOut": int,
    "ThrottleInterval": int, "InitGroups": bool, "WatchPaths": list, "QueueDirectories": list,
    "StartOnMount": bool, "StartInterval": int, "StartCalendarInterval": (dict, list),
    "StandardInPath": str, "StandardOutPath": str, "StandardErrorPath": str, "Debug": bool,
    "WaitForDebugger": bool, "SoftResourceLimits": dict, "HardResourceLimits": dict,
    "Nice": int, "ProcessType": str, "AbandonProcessGroup": bool, "LowPriorityIO": bool,
    "LowPriorityBackgroundIO": bool, "MaterializeDatalessFiles": bool, "LaunchOnlyOnce": bool,
    "MachServices": dict, "Sockets": dict, "LaunchEvents": dict, "SessionCreate": bool,
    "LegacyTimers": bool, "AssociatedBundleIdentifiers": (str, list),
}
RESOURCE_LIMIT_KEYS = {"Core", "CPU", "Data", "FileSize", "MemoryLock", "NumberOfFiles",
                       "NumberOfProcesses", "ResidentSetSize", "Stack"}
PROCESS_TYPES = {"Background", "Standard", "Adaptive", "Interactive"}
# Open files the service files allow: every client connection holds one, and at the limit gRPC
# stops accepting clients. launchd's is lower: a value above the machine's kern.maxfilesperproc,
# which varies by machine and release, is refused.
MIN_OPEN_FILES = 65536
MIN_LAUNCHD_OPEN_FILES = 8192


class Checks:
    def __init__(self):
        self.failures = []

    def check(self, name, ok, detail=""):
        print("%-4s %s%s" % ("ok" if ok else "FAIL", name, (": " + detail) if detail else ""),
              flush=True)
        if not ok:
            self.failures.append(name + ((": " + detail) if detail else ""))
        return ok

    def run(self, name, argv, **kwargs):
        result = subprocess.run(argv, capture_output=True, text=True, env=u.clean_env(), **kwargs)
        output = (result.stdout + result.stderr).strip()
        self.check(name, result.returncode == 0,
                   "`%s` exit %d%s" % (" ".join(argv), result.returncode,
                                       ("\n" + output) if result.returncode else ""))
        return result


def drain_timeout_s(flags_path):
    with open(flags_path) as f:
        match = re.search(r"^--drain_timeout=(\d+)s\s*$", f.read(), re.M)
    assert match, "no --drain_timeout=<N>s in " + flags_path
    return int(match.group(1))


def exported_metric_names(server):
    """The metric names a live coalesce-server (echo backend) exports, with the _bucket, _sum
    and _count series of its histograms."""
    with tempfile.TemporaryDirectory() as tmp, u.Processes(tmp) as procs:
        _, _, metrics_port = u.start_coalesce_server(procs, "coalesce-server", server,
                                                     ["--backend=echo"])
        page = u.http_get("http://127.0.0.1:%d/metrics" % metrics_port)
    names = set()
    for line in page.splitlines():
        match = re.match(r"# TYPE (\S+) (\S+)", line)
        if match:
            name, kind = match.groups()
            names.add(name)
            if kind in ("histogram", "summary"):
                names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


def referenced_coalesce_names(text):
    """coalesce_* metric names in PromQL text, leaving out names inside __name__ regexes (those
    select series that may or may not exist) and recording-rule names (level:metric:op)."""
    text = re.sub(r'__name__\s*=~\s*"[^"]*"', "", text)
    return {m for m in re.findall(r"(?<![:\w])coalesce_[a-z0-9_]+\b(?!:)", text)}


def check_names_exported(checks, what, names, exported):
    missing = sorted(names - exported)
    checks.check("every coalesce_* metric %s reads is exported by coalesce-server" % what,
                 names and not missing, "missing %s (reads %s)" % (missing, sorted(names)))


# --------------------------------------------------------------------------------------------

RULE_TEST = """rule_files:
  - {rules}
evaluation_interval: 10s
tests:
  - interval: 10s
    input_series:
      # 100 samples and 10 batches every 10 s: 10 samples/s, 1 batch/s, 10 samples per batch.
      - series: 'coalesce_inferences_total{{job="coalesce",instance="a",model="demo",version="1"}}'
        values: '0+100x30'
      - series: 'coalesce_batches_total{{job="coalesce",instance="a",model="demo",version="1"}}'
        values: '0+10x30'
      - series: 'coalesce_batch_size_sum{{job="coalesce",instance="a",model="demo",version="1"}}'
        values: '0+100x30'
      - series: 'coalesce_batch_size_count{{job="coalesce",instance="a",model="demo",version="1"}}'
        values: '0+10x30'
      # 100 requests every 10 s, all OK, all between 12.8 ms and 25.6 ms, 2 s of latency in
      # all: p99 = 12.8 + 12.8 x 0.99 ms, p50 = 12.8 + 12.8 x 0.5 ms, 0.2 requests inside.
      - series: 'coalesce_requests_total{{job="coalesce",instance="a",model="demo",version="1",code="OK"}}'
        values: '0+100x30'
      - series: 'coalesce_requests_total{{job="coalesce",instance="a",model="demo",version="1",code="UNAVAILABLE"}}'
        values: '0+0x30'
      # Version 2 beside it during a rollout: 50 more OK requests every 10 s.
      - series: 'coalesce_requests_total{{job="coalesce",instance="a",model="demo",version="2",code="OK"}}'
        values: '0+50x30'
      # The device busy 6 s of every 10 s.
      - series: 'coalesce_device_busy_seconds_total{{job="coalesce",instance="a",device="cuda:0"}}'
        values: '0+6x30'
      - series: 'coalesce_request_duration_seconds_bucket{{job="coalesce",instance="a",model="demo",version="1",le="0.0128"}}'
        values: '0+0x30'
      - series: 'coalesce_request_duration_seconds_bucket{{job="coalesce",instance="a",model="demo",version="1",le="0.0256"}}'
        values: '0+100x30'
      - series: 'coalesce_request_duration_seconds_bucket{{job="coalesce",instance="a",model="demo",version="1",le="+Inf"}}'
        values: '0+100x30'
      - series: 'coalesce_request_duration_seconds_sum{{job="coalesce",instance="a",model="demo",version="1"}}'
        values: '0+2x30'
      - series: 'coalesce_request_duration_seconds_count{{job="coalesce",instance="a",model="demo",version="1"}}'
        values: '0+100x30'
    promql_expr_test:
      - expr: model:coalesce_inferences:rate1m
        eval_time: 4m
        exp_samples:
          - labels: 'model:coalesce_inferences:rate1m{{model="demo"}}'
            value: 10
      - expr: model:coalesce_batches:rate1m
        eval_time: 4m
        exp_samples:
          - labels: 'model:coalesce_batches:rate1m{{model="demo"}}'
            value: 1
      - expr: model:coalesce_batch_size:mean_rate1m
        eval_time: 4m
        exp_samples:
          - labels: 'model:coalesce_batch_size:mean_rate1m{{model="demo"}}'
            value: 10
      - expr: model_code:coalesce_requests:rate1m{{code="OK"}}
        eval_time: 4m
        exp_samples:
          - labels: 'model_code:coalesce_requests:rate1m{{model="demo",code="OK"}}'
            value: 15
      - expr: model_version_code:coalesce_requests:rate1m{{code="OK"}}
        eval_time: 4m
        exp_samples:
          - labels: 'model_version_code:coalesce_requests:rate1m{{model="demo",version="1",code="OK"}}'
            value: 10
          - labels: 'model_version_code:coalesce_requests:rate1m{{model="demo",version="2",code="OK"}}'
            value: 5
      - expr: instance_device:coalesce_device_busy:ratio_rate1m
        eval_time: 4m
        exp_samples:
          - labels: 'instance_device:coalesce_device_busy:ratio_rate1m{{job="coalesce",instance="a",device="cuda:0"}}'
            value: 0.6
      - expr: round(model_version:coalesce_request_duration_seconds:p99_rate1m * 1e6)
        eval_time: 4m
        exp_samples:
          - labels: '{{model="demo",version="1"}}'
            value: 25472
      - expr: model:coalesce_requests_not_ok:ratio_rate1m
        eval_time: 4m
        exp_samples:
          - labels: 'model:coalesce_requests_not_ok:ratio_rate1m{{model="demo"}}'
            value: 0
      # In microseconds, rounded: the quantiles are not exact binary fractions.
      - expr: round(model:coalesce_request_duration_seconds:p99_rate1m * 1e6)
        eval_time: 4m
        exp_samples:
          - labels: '{{model="demo"}}'
            value: 25472
      - expr: round(model:coalesce_request_duration_seconds:p50_rate1m * 1e6)
        eval_time: 4m
        exp_samples:
          - labels: '{{model="demo"}}'
            value: 19200
      - expr: instance_model:coalesce_requests_in_server:mean_rate1m
        eval_time: 4m
        exp_samples:
          - labels: 'instance_model:coalesce_requests_in_server:mean_rate1m{{instance="a",model="demo"}}'
            value: 0.2
"""


def check_prometheus(checks, args):
    promtool = u.require_program("promtool")
    prom = os.path.join(DEPLOY, "prometheus")
    checks.run("promtool check config prometheus.yml (with rules.yml)",
               [promtool, "check", "config", os.path.join(prom, "prometheus.yml")])
    checks.run("promtool check rules rules.yml",
               [promtool, "check", "rules", os.path.join(prom, "rules.yml")])
    with tempfile.TemporaryDirectory() as tmp:
        test_path = os.path.join(tmp, "rules_test.yml")
        with open(test_path, "w") as f:
            f.write(RULE_TEST.format(rules=os.path.join(prom, "rules.yml")))
        checks.run("promtool test rules: recorded values match hand-computed ones",
                   [promtool, "test", "rules", test_path])
    # Debian builds Prometheus without Kubernetes service discovery, so its promtool rejects
    # kubernetes_sd_configs; upstream builds accept it.
    k8s = os.path.join(prom, "prometheus-kubernetes.yml")
    result = subprocess.run([promtool, "check", "config", k8s], capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode != 0 and "kubernetes_sd_configs not found" in output:
        print("note prometheus-kubernetes.yml: this promtool lacks Kubernetes discovery; "
              "checked its relabel regexes only")
        with open(k8s) as f:
            for regex in re.findall(r"regex: (.+)", f.read()):
                re.compile("^(?:%s)$" % regex.strip().strip('"'))
    else:
        checks.check("promtool check config prometheus-kubernetes.yml", result.returncode == 0,
                     output)
    with open(os.path.join(prom, "rules.yml")) as f:
        rules = re.sub(r"^\s*#.*$", "", f.read(), flags=re.M)  # names in comments do not count
    check_names_exported(checks, "rules.yml", referenced_coalesce_names(rules),
                         exported_metric_names(args.server))


def check_nginx(checks, args):
    nginx = u.require_program("nginx")
    with tempfile.TemporaryDirectory() as tmp:
        temp_paths = "\n".join("    %s_temp_path %s;" % (k, os.path.join(tmp, k))
                               for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write("pid %s;\nevents {}\nhttp {\n    access_log off;\n%s\n    include %s;\n}\n"
                    % (os.path.join(tmp, "nginx.pid"), temp_paths,
                       os.path.join(DEPLOY, "nginx", "coalesce.conf")))
        checks.run("nginx -t with deploy/nginx/coalesce.conf",
                   [nginx, "-t", "-q", "-p", tmp, "-c", conf, "-e", os.path.join(tmp, "error.log")])
    with open(os.path.join(DEPLOY, "nginx", "coalesce.conf")) as f:
        text = f.read()
    checks.check("client_max_body_size admits a 64 MiB message plus gRPC's 5-byte prefix",
                 re.search(r"client_max_body_size 65m;", text) is not None)
    checks.check("nginx never re-sends a call that reached a replica (no non_idempotent)",
                 "grpc_next_upstream error timeout;" in text
                 and not re.search(r"^\s*grpc_next_upstream[^;]*non_idempotent", text, re.M))


def check_systemd(checks, args):
    analyze = u.require_program("systemd-analyze")
    unit_path = os.path.join(DEPLOY, "systemd", "coalesce.service")
    with open(unit_path) as f:
        unit = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "coalesce.service")
        with open(copy, "w") as f:
            f.write(unit.replace("/usr/local/bin/coalesce-server", os.path.abspath(args.server)))
        checks.run("systemd-analyze verify coalesce.service", [analyze, "verify", copy])
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    stop = re.fullmatch(r"(\d+)s?", settings.get("TimeoutStopSec", ""))
    drain = drain_timeout_s(os.path.join(u.REPO_ROOT, "config", "server.flags"))
    checks.check("TimeoutStopSec above --drain_timeout of config/server.flags",
                 stop is not None and int(stop.group(1)) > drain,
                 "%s vs %d s" % (settings.get("TimeoutStopSec"), drain))
    expected = {"Type": "exec", "KillSignal": "SIGTERM", "Restart": "on-failure",
                "ExecReload": "/bin/kill -HUP $MAINPID",
                "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                "NoNewPrivileges": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "",
                "LockPersonality": "yes", "SystemCallFilter": "~@privileged"}
    wrong = {k: settings.get(k) for k, v in expected.items() if settings.get(k) != v}
    checks.check("hardening settings present", not wrong, "differ: %s" % wrong)
    checks.check("--flagfile in ExecStart", "--flagfile=" in settings.get("ExecStart", ""))
    files = settings.get("LimitNOFILE", "")
    checks.check("LimitNOFILE at least %d (one descriptor per client connection)" % MIN_OPEN_FILES,
                 files == "infinity" or (files.isdigit() and int(files) >= MIN_OPEN_FILES),
                 "LimitNOFILE=%s" % files)
    for key in ("RestrictAddressFamilies", "MemoryDenyWriteExecute", "PrivateDevices"):
        checks.check("%s set" % key, key in settings)


def check_launchd(checks, args):
    plist_path = os.path.join(DEPLOY, "launchd", "com.coalesce.server.plist")
    xmllint = u.require_program("xmllint")
    with tempfile.TemporaryDirectory() as tmp:
        dtd = os.path.join(tmp, "PropertyList-1.0.dtd")
        with open(dtd, "w") as f:
            f.write(PLIST_DTD)
        checks.run("xmllint --dtdvalid PropertyList-1.0.dtd",
                   [xmllint, "--nonet", "--noout", "--dtdvalid", dtd, plist_path])
    with open(plist_path, "rb") as f:
        plist = plistlib.load(f)
    unknown = sorted(set(plist) - set(LAUNCHD_KEYS))
    checks.check("only keys of launchd.plist(5)", not unknown, "unknown %s" % unknown)
    mistyped = {k: type(v).__name__ for k, v in plist.items()
                if k in LAUNCHD_KEYS and not isinstance(v, LAUNCHD_KEYS[k])}
    checks.check("values of the documented types", not mistyped, str(mistyped))
    for key in ("SoftResourceLimits", "HardResourceLimits"):
        bad = set(plist.get(key, {})) - RESOURCE_LIMIT_KEYS
        checks.check("%s keys" % key, not bad, str(bad))
    soft_files = plist.get("SoftResourceLimits", {}).get("NumberOfFiles", 0)
    hard_files = plist.get("HardResourceLimits", {}).get("NumberOfFiles", soft_files)
    checks.check("SoftResourceLimits NumberOfFiles at least %d, under no lower hard limit"
                 % MIN_LAUNCHD_OPEN_FILES,
                 soft_files >= MIN_LAUNCHD_OPEN_FILES and hard_files >= soft_files,
                 "soft %s, hard %s" % (soft_files, hard_files))
    checks.check("ProcessType is one of %s" % sorted(PROCESS_TYPES),
                 plist.get("ProcessType", "Standard") in PROCESS_TYPES)
    checks.check("Label, RunAtLoad, KeepAlive", plist.get("Label") == "com.coalesce.server"
                 and plist.get("RunAtLoad") is True and plist.get("KeepAlive") is True)
    arguments = plist.get("ProgramArguments", [])
    checks.check("ProgramArguments runs coalesce-server with a flag file",
                 len(arguments) == 2 and arguments[0].endswith("/coalesce-server")
                 and arguments[1].startswith("--flagfile=/"), str(arguments))
    checks.check("log paths are absolute", all(str(plist.get(k, "")).startswith("/") for k in
                                               ("StandardOutPath", "StandardErrorPath")))
    drain = drain_timeout_s(os.path.join(u.REPO_ROOT, "config", "server.flags"))
    checks.check("ExitTimeOut above --drain_timeout", plist.get("ExitTimeOut", 20) > drain,
                 "%s vs %d s" % (plist.get("ExitTimeOut"), drain))
    checks.run("install.sh parses", ["sh", "-n", os.path.join(DEPLOY, "launchd", "install.sh")])


def server_flag_names(server):
    result = subprocess.run([server, "--help"], capture_output=True, text=True)
    return set(re.findall(r"^\s+--(\w+) \(", result.stdout + result.stderr, re.M))


def check_kubernetes(checks, args):
    try:
        import yaml
    except ImportError:
        u.skip("python3-yaml is not installed")
    k8s = os.path.join(DEPLOY, "kubernetes")
    docs = []
    for name in sorted(os.listdir(k8s)):
        if name.endswith(".yaml"):
            with open(os.path.join(k8s, name)) as f:
                try:
                    loaded = [d for d in yaml.safe_load_all(f) if d]
                    checks.check("%s parses as YAML" % name, True)
                except yaml.YAMLError as e:
                    checks.check("%s parses as YAML" % name, False, str(e))
                    continue
            docs += [(name, d) for d in loaded]
    by_kind = {}
    for name, d in docs:
        if "kind" in d:
            by_kind.setdefault(d["kind"], []).append(d)
    kinds = {k: [d["apiVersion"] for d in v] for k, v in by_kind.items()}
    checks.check("manifests and API versions", kinds == {
        "Deployment": ["apps/v1"], "Service": ["v1", "v1"],
        "HorizontalPodAutoscaler": ["autoscaling/v2"], "PodDisruptionBudget": ["policy/v1"],
        "Kustomization": ["kustomize.config.k8s.io/v1beta1"]}, str(kinds))

    deployment = by_kind["Deployment"][0]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    checks.check("Deployment selector matches its pod labels",
                 spec["selector"]["matchLabels"].items() <= labels.items())
    checks.check("container ports grpc 8001, metrics 8002",
                 ports == {"grpc": 8001, "metrics": 8002})
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        grpc_probe = container.get(probe, {}).get("grpc", {})
        checks.check("%s is a native gRPC probe on 8001" % probe, grpc_probe.get("port") == 8001)
    flags_path = os.path.join(k8s, "server.flags")
    with open(flags_path) as f:
        flags = f.read()
    drain = drain_timeout_s(flags_path)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    checks.check("terminationGracePeriodSeconds above preStop + --drain_timeout",
                 pod["terminationGracePeriodSeconds"] > pre_stop + drain,
                 "%s vs %d + %d s" % (pod["terminationGracePeriodSeconds"], pre_stop, drain))
    checks.check("args pass the flag file",
                 container["args"] == ["--flagfile=/etc/coalesce/server.flags"])
    checks.check("flag file binds every interface inside the pod",
                 "--grpc_address=0.0.0.0:8001" in flags
                 and "--metrics_address=0.0.0.0:8002" in flags)
    known = server_flag_names(args.server)
    used = set(re.findall(r"^--(\w+)=", flags, re.M))
    checks.check("server.flags holds only flags coalesce-server knows", known and used <= known,
                 "unknown %s" % sorted(used - known))

    for service in by_kind["Service"]:
        name = service["metadata"]["name"]
        checks.check("Service %s selects the pods" % name,
                     service["spec"]["selector"].items() <= labels.items())
        checks.check("Service %s targets named container ports" % name,
                     all(p["targetPort"] in ports for p in service["spec"]["ports"]))
    hpa = by_kind["HorizontalPodAutoscaler"][0]["spec"]
    checks.check("HPA scales the Deployment", hpa["scaleTargetRef"]["name"] ==
                 deployment["metadata"]["name"] and hpa["scaleTargetRef"]["kind"] == "Deployment")
    metric_names = [m["pods"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "Pods"]
    with open(os.path.join(k8s, "prometheus-adapter-rules.yaml")) as f:
        adapter = yaml.safe_load(f)
    served = [r["name"]["as"] for r in adapter["rules"]]
    checks.check("HPA's per-pod metric is served by the prometheus-adapter rule",
                 metric_names and set(metric_names) <= set(served),
                 "%s vs %s" % (metric_names, served))
    pdb = by_kind["PodDisruptionBudget"][0]["spec"]
    checks.check("PDB selects the pods", pdb["selector"]["matchLabels"].items() <= labels.items())
    kustomization = by_kind["Kustomization"][0]
    checks.check("kustomization lists every manifest",
                 set(kustomization["resources"]) == {n for n, d in docs if d.get("kind") in (
                     "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")})
    adapter_names = referenced_coalesce_names(" ".join(r["seriesQuery"] for r in adapter["rules"]))
    check_names_exported(checks, "the adapter rule", adapter_names,
                         exported_metric_names(args.server))
    kubectl = next((p for p in ("/usr/bin/kubectl", "/usr/local/bin/kubectl")
                    if os.access(p, os.X_OK)), None)
    if kubectl:
        checks.run("kubectl kustomize renders", [kubectl, "kustomize", k8s])
    else:
        print("note kubectl is not installed: kustomize rendering not checked")
    check_k8s_schemas(checks, [d for _, d in docs if d.get("kind") not in (None, "Kustomization")])


K8S_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s_schema")


def check_k8s_schemas(checks, manifests):
    """Each manifest against the Kubernetes OpenAPI schema (k8s_schema/validate.js)."""
    node = u.require_program("node")
    if not os.path.isdir(os.path.join(K8S_SCHEMA, "node_modules", "kubernetes-models")):
        checks.check("kubernetes-models installed in tests/e2e/k8s_schema", False,
                     "node_modules is missing: run scripts/install-deps.sh")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "manifests.json")
        with open(path, "w") as f:
            json.dump(manifests, f)
        checks.run("manifests valid against the Kubernetes OpenAPI schemas (kubernetes-models)",
                   [node, os.path.join(K8S_SCHEMA, "validate.js"), path])


def unknown_fields(value, schema, where):
    """Fields of `value` that `schema` (structural, as a CRD's) does not declare: the API server
    would drop them without a word."""
    found = []
    if isinstance(value, dict) and "properties" in schema and \
            not schema.get("x-kubernetes-preserve-unknown-fields"):
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(where + "." + key)
            else:
                found += unknown_fields(item, schema["properties"][key], where + "." + key)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += unknown_fields(item, schema["items"], "%s[%d]" % (where, i))
    return found


def check_kserve(checks, args):
    try:
        import jsonschema
        import yaml
    except ImportError:
        u.skip("python3-jsonschema or python3-yaml is not installed")
    kserve = os.path.join(DEPLOY, "kserve")
    with open(os.path.join(kserve, "servingruntime.yaml")) as f:
        runtime = yaml.safe_load(f)
    with open(os.path.join(kserve, "inferenceservice-example.yaml")) as f:
        example = yaml.safe_load(f)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas",
                           "servingruntime.schema.json")) as f:
        schema = json.load(f)
    try:
        jsonschema.validate(runtime, schema)
        checks.check("ServingRuntime valid against KServe's CRD schema", True)
    except jsonschema.ValidationError as e:
        checks.check("ServingRuntime valid against KServe's CRD schema", False, e.message)
    pruned = unknown_fields(runtime, schema, "")
    checks.check("ServingRuntime has no field the CRD would prune", not pruned, str(pruned))
    check_k8s_schemas(checks, [runtime])
    spec = runtime["spec"]
    checks.check("protocol grpc-v2 only (coalesce has no REST binding)",
                 spec["protocolVersions"] == ["grpc-v2"], str(spec["protocolVersions"]))
    checks.check("serves the pytorch model format",
                 {m["name"] for m in spec["supportedModelFormats"]} == {"pytorch"})
    container = spec["containers"][0]
    checks.check("container named kserve-container", container["name"] == "kserve-container")
    checks.check("gRPC on the container port named h2c, 8001",
                 [(p["name"], p["containerPort"]) for p in container["ports"]] == [("h2c", 8001)])
    flags = dict(a[2:].split("=", 1) for a in container["args"])
    checks.check("serves the repository KServe mounts at /mnt/models",
                 flags.get("model_repository") == "/mnt/models")
    checks.check("binds every interface on 8001 and 8002",
                 flags.get("grpc_address") == "0.0.0.0:8001"
                 and flags.get("metrics_address") == "0.0.0.0:8002")
    known = server_flag_names(args.server)
    checks.check("container args are flags coalesce-server knows", known and set(flags) <= known,
                 "unknown %s" % sorted(set(flags) - known))
    checks.check("metrics annotation names port 8002",
                 spec["annotations"].get("prometheus.kserve.io/port") == "8002")
    with open(os.path.join(DEPLOY, "kubernetes", "kustomization.yaml")) as f:
        image = next(i for i in yaml.safe_load(f)["images"] if i["name"] == "coalesce-server")
    checks.check("image is the one the kustomization names",
                 container["image"] == "%s:%s" % (image["newName"], image["newTag"]),
                 "%s vs %s:%s" % (container["image"], image["newName"], image["newTag"]))
    model = example["spec"]["predictor"]["model"]
    checks.check("the example InferenceService uses this runtime and a protocol it lists",
                 model["runtime"] == runtime["metadata"]["name"]
                 and model["protocolVersion"] in spec["protocolVersions"]
                 and model["modelFormat"]["name"] == "pytorch")


def check_homebrew(checks, args):
    ruby = u.require_program("ruby")
    path = os.path.join(u.REPO_ROOT, "packaging", "homebrew", "coalesce.rb")
    checks.run("ruby -c coalesce.rb", [ruby, "-c", path])
    with open(path) as f:
        formula = f.read()
    with open(os.path.join(u.REPO_ROOT, "CMakeLists.txt")) as f:
        version = re.search(r"project\(coalesce VERSION ([0-9.]+)", f.read()).group(1)
    checks.check("the release URL is the project version's tag",
                 re.search(r'url ".*/v%s\.tar\.gz"' % re.escape(version), formula) is not None)
    deps = set(re.findall(r'^\s*depends_on "([^"]+)"\s*$', formula, re.M))
    wanted = {"pytorch", "grpc", "protobuf", "abseil", "spdlog", "prometheus-cpp"}
    checks.check("depends on Homebrew's %s" % ", ".join(sorted(wanted)), wanted <= deps,
                 "missing %s" % sorted(wanted - deps))
    checks.check("installs with the project's rules (cmake --install)",
                 '"cmake", "--install", "build"' in formula)
    service = re.search(r"^  service do\n(.*?)^  end", formula, re.M | re.S)
    checks.check("has a service block", service is not None)
    if service:
        checks.check("the service runs coalesce-server with etc/coalesce/server.flags",
                     'run [opt_bin/"coalesce-server", "--flagfile=#{etc}/coalesce/server.flags"]'
                     in service.group(1))
        checks.check("the service restarts the server when it exits",
                     "keep_alive true" in service.group(1))


def dockerfile_stages(text):
    """[(base image, [instructions])] per FROM of a Dockerfile (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", text)
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append((line.split()[1], []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def check_docker(checks, args):
    flags_path = os.path.join(u.REPO_ROOT, "packaging", "docker", "server.flags")
    with open(flags_path) as f:
        flags = dict(re.findall(r"^--(\w+)=(.*)$", f.read(), re.M))
    with open(os.path.join(u.REPO_ROOT, "config", "server.flags")) as f:
        demo = set(re.findall(r"^--(\w+)=", f.read(), re.M))
    known = server_flag_names(args.server)
    checks.check("the image's flag file holds only flags coalesce-server knows",
                 known and set(flags) <= known, "unknown %s" % sorted(set(flags) - known))
    checks.check("the image's flag file sets every flag config/server.flags sets",
                 demo <= set(flags), "missing %s" % sorted(demo - set(flags)))
    checks.check("the image binds every interface and serves /models",
                 flags.get("grpc_address") == "0.0.0.0:8001"
                 and flags.get("metrics_address") == "0.0.0.0:8002"
                 and flags.get("model_repository") == "/models")
    for name, build_base in (("Dockerfile", "debian:12"),
                             (os.path.join("packaging", "docker", "Dockerfile.cuda"), "debian:12")):
        with open(os.path.join(u.REPO_ROOT, name)) as f:
            stages = dockerfile_stages(f.read())
        checks.check("%s: two stages, built on %s, run on debian:12-slim" % (name, build_base),
                     [base for base, _ in stages] == [build_base, "debian:12-slim"],
                     str([base for base, _ in stages]))
        run = " ".join(stages[-1][1]) if stages else ""
        user = re.search(r"\bUSER (\S+)", run)
        checks.check("%s: runs as a non-root user" % name,
                     user is not None and user.group(1).split(":")[0] not in ("0", "root"))
        checks.check("%s: exposes 8001 and 8002" % name, "EXPOSE 8001 8002" in run)
        checks.check("%s: HEALTHCHECK asks gRPC health with the installed client" % name,
                     re.search(r'HEALTHCHECK .*CMD \["coalesce-client", "--health"', run) is not None)
        checks.check("%s: starts coalesce-server with the image's flag file" % name,
                     'ENTRYPOINT ["coalesce-server"]' in run
                     and "--flagfile=/etc/coalesce/server.flags" in run
                     and "COPY packaging/docker/server.flags /etc/coalesce/server.flags" in run)
    with open(os.path.join(u.REPO_ROOT, "Dockerfile")) as f:
        stages = dockerfile_stages(f.read())
    checks.check("Dockerfile: the build stage makes the Debian package",
                 "cpack -G DEB" in " ".join(stages[0][1]))
    checks.check("Dockerfile: the run stage installs that package with apt",
                 re.search(r"apt-get install .*/tmp/coalesce_\*\.deb", " ".join(stages[1][1]))
                 is not None)
    with open(os.path.join(u.REPO_ROOT, ".dockerignore")) as f:
        ignored = f.read().split()
    checks.check(".dockerignore keeps build trees and .git out of the context",
                 {"build*/", ".git/"} <= set(ignored))


def check_grafana(checks, args):
    path = os.path.join(DEPLOY, "grafana", "coalesce-dashboard.json")
    with open(path) as f:
        dashboard = json.load(f)
    panels = dashboard.get("panels", [])
    checks.check("dashboard has uid, title, schemaVersion, panels",
                 all(dashboard.get(k) for k in ("uid", "title", "schemaVersion")) and panels)
    ids = [p.get("id") for p in panels]
    checks.check("panel ids unique", len(ids) == len(set(ids)), str(ids))
    checks.check("every panel has a type, grid position, data source and queries",
                 all(p.get("type") and {"x", "y", "w", "h"} <= set(p.get("gridPos", {}))
                     and p.get("datasource") and p.get("targets") for p in panels))
    titles = " ".join(p["title"].lower() for p in panels)
    for word in ("throughput", "p99", "batch size", "queue depth", "memory"):
        checks.check("a panel shows %s" % word, word in titles)
    variables = {"$__rate_interval": "1m", "$job": "coalesce", "$model": ".*",
                 "$instance": ".*", "${datasource}": ""}
    exprs = []
    for panel in panels:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            exprs.append(expr)
    promtool = u.require_program("promtool")
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "dashboard_queries.yml")
        with open(rules, "w") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, expr in enumerate(exprs):
                f.write("      - record: dashboard:query:%d\n        expr: %s\n"
                        % (i, json.dumps(expr)))
        checks.run("every dashboard query parses as PromQL (promtool)",
                   [promtool, "check", "rules", rules])
    check_names_exported(checks, "the dashboard", referenced_coalesce_names(" ".join(exprs)),
                         exported_metric_names(args.server))


PARTS = {"prometheus": check_prometheus, "nginx": check_nginx, "systemd": check_systemd,
         "launchd": check_launchd, "kubernetes": check_kubernetes, "kserve": check_kserve,
         "homebrew": check_homebrew, "docker": check_docker, "grafana": check_grafana}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=sorted(PARTS))
    p.add_argument("--server", required=True, help="coalesce-server binary")
    args = p.parse_args()
    checks = Checks()
    PARTS[args.part](checks, args)
    if checks.failures:
        print("FAILED:\n  " + "\n  ".join(checks.failures))
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
