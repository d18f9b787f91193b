# coalesce-engine-bench (included by bench/CMakeLists.txt): the execution engine (executor +
# TorchBackend, in-process, no RPC) against the model's ceiling (the demo or --model_dir), per
# batch size and variant (precision, pooled staging, workers). A program, not a test: it prints
# a table.
add_executable(coalesce-engine-bench engine_bench.cc)
target_link_libraries(coalesce-engine-bench PRIVATE coalesce_torch_bench coalesce_torch_testing
  coalesce_bench_model_dir coalesce_flag_parsing
  absl::flags absl::flags_parse absl::flags_usage absl::status absl::statusor absl::strings
  absl::str_format absl::synchronization absl::time Threads::Threads)
