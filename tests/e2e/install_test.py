#!/usr/bin/python3
"""The install rules and the Debian package, as a user gets them (cmake/install.cmake).

  install_test.py --build BUILD_DIR --version X.Y.Z

1. `cmake --install BUILD --prefix TMP/prefix`: every file in its place, the systemd unit
   pointing at the installed binary and flag file, each program's --help text installed equal to
   what the binary prints; the installed coalesce-server serves the demo model and the installed
   coalesce-client gets an answer and a SERVING health check; a second install keeps an edited
   flag file.
2. `cpack -G DEB`: the control fields (name, version, architecture, runtime libraries by package
   name from dpkg-shlibdeps), the contents (only the package's own paths, the unit installed but
   not enabled, no maintainer script, the flag file a conffile); extracted with dpkg-deb -x, its
   coalesce-server reports the package version and serves the demo model.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402

failures = []


def check(name, ok, detail=""):
    print("%-4s %s%s" % ("ok" if ok else "FAIL", name, (": " + detail) if detail else ""),
          flush=True)
    if not ok:
        failures.append(name)
    return ok


def run(argv, **kwargs):
    u.log("run " + " ".join(argv))
    return subprocess.run(argv, capture_output=True, text=True, env=u.clean_env(), **kwargs)


def serves_demo(workdir, bin_dir, label):
    """Starts bin_dir/coalesce-server on free ports; coalesce-client from bin_dir must get the demo
    model's answer and a SERVING health status."""
    with u.Processes(workdir) as procs:
        _, grpc_port, _ = u.start_coalesce_server(
            procs, label, os.path.join(bin_dir, "coalesce-server"), ["--device=cpu"])
        client = os.path.join(bin_dir, "coalesce-client")
        address = "--address=127.0.0.1:%d" % grpc_port
        health = run([client, address, "--health"])
        check("%s: coalesce-client --health says SERVING" % label,
              health.returncode == 0 and health.stdout.strip() == "SERVING",
              "exit %d: %s%s" % (health.returncode, health.stdout, health.stderr))
        infer = run([client, address, "--model=demo"])
        check("%s: coalesce-client gets the demo model's answer" % label,
              infer.returncode == 0 and "model demo version 1" in infer.stdout
              and "OUTPUT0" in infer.stdout, infer.stdout + infer.stderr)
        check("%s: coalesce-server drains and exits 0 on SIGTERM" % label,
              procs.stop(label) == 0)


def check_install(build, tmp):
    prefix = os.path.join(tmp, "prefix")
    result = run(["cmake", "--install", build, "--prefix", prefix])
    if not check("cmake --install succeeds", result.returncode == 0, result.stderr[-2000:]):
        return
    for path in ["bin/coalesce-server", "bin/coalesce-client", "bin/coalesce-bench"]:
        check("installed %s, executable" % path, os.access(os.path.join(prefix, path), os.X_OK))
    for path in ["share/coalesce/server.flags", "share/coalesce/models/demo_mlp/config.pbtxt",
                 "share/coalesce/models/README.md", "share/coalesce/launchd/com.coalesce.server.plist",
                 "share/doc/coalesce/README.md", "share/doc/coalesce/docs/model-repository.md",
                 "etc/coalesce/server.flags"]:
        check("installed %s" % path, os.path.isfile(os.path.join(prefix, path)))
    with open(os.path.join(u.REPO_ROOT, "config", "server.flags")) as f:
        flags = f.read()
    with open(os.path.join(prefix, "etc/coalesce/server.flags")) as f:
        check("etc/coalesce/server.flags is config/server.flags", f.read() == flags)
    for program in ["coalesce-server", "coalesce-client", "coalesce-bench"]:
        helped = run([os.path.join(prefix, "bin", program), "--help"])
        text_path = os.path.join(prefix, "share/doc/coalesce/help", program + ".txt")
        with open(text_path) as f:
            installed = f.read()
        check("share/doc/coalesce/help/%s.txt is what --help prints" % program,
              installed and installed == (helped.stdout or helped.stderr))
    unit_path = os.path.join(prefix, "lib/systemd/system/coalesce.service")
    if check("installed lib/systemd/system/coalesce.service", os.path.isfile(unit_path)):
        with open(unit_path) as f:
            unit = f.read()
        expected = "ExecStart=%s/bin/coalesce-server --flagfile=%s/etc/coalesce/server.flags" % (
            prefix, prefix)
        check("the unit starts the installed binary with the installed flag file",
              expected in unit.splitlines(), re.search(r"^ExecStart=.*$", unit, re.M).group(0))
    checked = run([os.path.join(prefix, "bin/coalesce-server"),
                   "--flagfile=" + os.path.join(prefix, "etc/coalesce/server.flags"),
                   "--check-config"])
    check("the installed flag file passes --check-config", checked.returncode == 0,
          checked.stdout + checked.stderr)
    serves_demo(tmp, os.path.join(prefix, "bin"), "installed")
    with open(os.path.join(prefix, "etc/coalesce/server.flags"), "a") as f:
        f.write("--workers=3\n")
    run(["cmake", "--install", build, "--prefix", prefix])
    with open(os.path.join(prefix, "etc/coalesce/server.flags")) as f:
        check("a second install keeps the operator's flag file", f.read().endswith("--workers=3\n"))


def check_package(build, version, tmp):
    out = os.path.join(tmp, "package")
    result = run(["cpack", "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"),
                  "-B", out])
    debs = glob.glob(os.path.join(out, "*.deb"))
    if not check("cpack -G DEB makes one .deb", result.returncode == 0 and len(debs) == 1,
                 (result.stdout + result.stderr)[-3000:]):
        return
    deb = debs[0]
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    check("file name coalesce_<version>_<arch>.deb",
          os.path.basename(deb) == "coalesce_%s_%s.deb" % (version, arch), os.path.basename(deb))
    fields = {}
    for field in ["Package", "Version", "Architecture", "Depends", "Section", "Maintainer",
                  "Description"]:
        fields[field] = run(["dpkg-deb", "-f", deb, field]).stdout.strip()
    check("Package: coalesce", fields["Package"] == "coalesce", fields["Package"])
    check("Version is the project's", fields["Version"] == version, fields["Version"])
    check("Architecture is the machine's", fields["Architecture"] == arch)
    depends = fields["Depends"]
    # Package names as Debian 12 has them (Ubuntu 24.04's differ: a prefix is enough there).
    for library in ["libgrpc++1", "libprotobuf", "libspdlog1", "libprometheus-cpp-core",
                    "libc6", "libstdc++6"]:
        check("Depends names %s* (dpkg-shlibdeps)" % library,
              re.search(r"(^|, )%s" % re.escape(library), depends) is not None, depends)
    check("Depends names LibTorch's package", "libtorch" in depends, depends)
    check("Section and Maintainer set", fields["Section"] and fields["Maintainer"])
    listing = run(["dpkg-deb", "-c", deb]).stdout.splitlines()
    paths = [line.split()[5] for line in listing if line.strip()]
    allowed = ("./usr/bin/coalesce-", "./usr/share/coalesce", "./usr/share/doc/coalesce",
               "./usr/lib/systemd/system/coalesce.service", "./etc/coalesce")
    dirs = {"./", "./usr/", "./usr/bin/", "./usr/share/", "./usr/share/doc/", "./usr/lib/",
            "./usr/lib/systemd/", "./usr/lib/systemd/system/", "./etc/"}
    strays = [p for p in paths if p not in dirs and not p.startswith(allowed)]
    check("the package holds only its own paths", not strays, str(strays[:10]))
    for path in ["./usr/bin/coalesce-server", "./usr/bin/coalesce-client", "./usr/bin/coalesce-bench",
                 "./usr/lib/systemd/system/coalesce.service", "./etc/coalesce/server.flags",
                 "./usr/share/coalesce/models/demo_mlp/config.pbtxt"]:
        check("the package holds %s" % path, path in paths)
    check("the unit is installed but not enabled (no .wants link)",
          not any(".wants" in p for p in paths))
    control = os.path.join(tmp, "control")
    run(["dpkg-deb", "-e", deb, control])
    scripts = [s for s in ("preinst", "postinst", "prerm", "postrm")
               if os.path.exists(os.path.join(control, s))]
    check("no maintainer scripts (nothing made outside the package)", not scripts, str(scripts))
    with open(os.path.join(control, "conffiles")) as f:
        check("/etc/coalesce/server.flags is a conffile",
              f.read().split() == ["/etc/coalesce/server.flags"])
    root = os.path.join(tmp, "root")
    run(["dpkg-deb", "-x", deb, root])
    with open(os.path.join(root, "usr/lib/systemd/system/coalesce.service")) as f:
        check("the packaged unit runs /usr/bin/coalesce-server with /etc/coalesce/server.flags",
              "ExecStart=/usr/bin/coalesce-server --flagfile=/etc/coalesce/server.flags"
              in f.read().splitlines())
    reported = run([os.path.join(root, "usr/bin/coalesce-server"), "--version"])
    text = (reported.stdout + reported.stderr).strip()
    check("coalesce-server --version reports the package version",
          reported.returncode == 0 and text == "coalesce-server " + fields["Version"],
          "exit %d: %r" % (reported.returncode, text))
    serves_demo(tmp, os.path.join(root, "usr/bin"), "packaged")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", required=True, help="the configured and built build directory")
    p.add_argument("--version", required=True, help="the project version (CMakeLists.txt)")
    args = p.parse_args()
    u.require_program("dpkg-deb")
    u.require_program("dpkg-shlibdeps")
    with tempfile.TemporaryDirectory() as tmp:
        check_install(os.path.abspath(args.build), tmp)
        check_package(os.path.abspath(args.build), args.version, tmp)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
