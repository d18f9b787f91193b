# Homebrew formula for coalesce (docs/install.md). Not yet run on a Mac: it is checked with
# `ruby -c` on Linux only. Copy it into a tap (brew tap-new <user>/coalesce) and install with
# `brew install <user>/coalesce/coalesce`; `brew services start coalesce` then runs the server
# as a launchd agent of the logged-in user, which is what lets it reach the GPU through Metal.
class Coalesce < Formula
  desc "gRPC inference server that batches small requests for Apple MPS, CUDA and CPU"
  homepage "https://github.com/coalesce-dev/coalesce"
  url "https://github.com/coalesce-dev/coalesce/archive/refs/tags/v0.1.0.tar.gz"
  # Set by the release checklist (docs/releasing.md) from the tarball of the tag.
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license "Apache-2.0"
  head "https://github.com/coalesce-dev/coalesce.git", branch: "main"

  depends_on "cmake" => :build
  depends_on "pkg-config" => :build
  depends_on "abseil"
  depends_on "concurrentqueue"
  depends_on "grpc"
  depends_on "openssl@3"
  depends_on "prometheus-cpp"
  depends_on "protobuf"
  depends_on "pytorch"
  depends_on "spdlog"

  def install
    args = %W[
      -DCOALESCE_BUILD_TESTS=OFF
      -DCMAKE_PREFIX_PATH=#{Formula["pytorch"].opt_prefix}
    ]
    system "cmake", "-S", ".", "-B", "build", *args, *std_cmake_args
    system "cmake", "--build", "build"
    system "cmake", "--install", "build"
    (var/"log/coalesce").mkpath
    (var/"coalesce").mkpath
  end

  # The flag file lives in etc/coalesce/server.flags (installed once, kept on upgrade).
  service do
    run [opt_bin/"coalesce-server", "--flagfile=#{etc}/coalesce/server.flags"]
    keep_alive true
    working_dir var/"coalesce"
    log_path var/"log/coalesce/coalesce.out.log"
    error_log_path var/"log/coalesce/coalesce.err.log"
    # Draining takes up to --drain_timeout (30 s in the flag file) after SIGTERM.
    process_type :interactive
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/coalesce-server --version")
    port = free_port
    metrics = free_port
    pid = spawn bin/"coalesce-server", "--grpc_address=127.0.0.1:#{port}",
                "--metrics_address=127.0.0.1:#{metrics}", "--device=cpu"
    begin
      sleep 10
      assert_match "model demo", shell_output("#{bin}/coalesce-client --address=127.0.0.1:#{port}")
    ensure
      Process.kill("TERM", pid)
      Process.wait(pid)
    end
  end
end
