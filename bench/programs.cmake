# Benchmark peers that are programs (included by bench/CMakeLists.txt).

# coalesce-echo-server: the protocol's ceiling. ModelInfer returns INPUT0 as OUTPUT0 with no
# queue and no model, so a load generator run against it measures the RPC path alone.
add_executable(coalesce-echo-server echo_server.cc)
target_link_libraries(coalesce-echo-server PRIVATE coalesce_proto coalesce_flag_parsing absl::flags absl::flags_parse
  absl::flags_usage absl::strings)

# coalesce-model-ceiling: the demo model (or --model_dir) run in-process by the server's own
# TorchBackend at each batch size, no RPC: the model's ceiling, which bench/run.sh reads
# coalesce's rate against.
add_executable(coalesce-model-ceiling model_ceiling.cc)
target_link_libraries(coalesce-model-ceiling PRIVATE coalesce_torch coalesce_bench_model_dir
  coalesce_flag_parsing
  absl::flags absl::flags_parse absl::flags_usage absl::status absl::statusor absl::strings
  absl::str_format absl::time Threads::Threads)
