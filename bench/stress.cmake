# coalesce-stress: rounds of mixed, hostile traffic and a soak mode against a live server
# (included by bench/CMakeLists.txt). A program, not a test: it prints a table per round.
add_executable(coalesce-stress stress.cc stress_poison.cc stress_runner.cc
  stress_slow_clients.cc stress_slow_reader.cc stress_traffic.cc)
target_include_directories(coalesce-stress PRIVATE "${PROJECT_SOURCE_DIR}")
target_link_libraries(coalesce-stress PRIVATE coalesce_proto coalesce_flag_parsing
  coalesce_non_reading_client gRPC::grpc++ absl::flags
  absl::flags_parse absl::flags_usage absl::flags_config absl::strings absl::str_format
  absl::status absl::statusor absl::synchronization absl::time)

# A client that never reads its answers (speaks HTTP/2 itself): coalesce-stress's slow reader, and
# the transport tests'.
add_library(coalesce_non_reading_client STATIC non_reading_client.cc)
target_include_directories(coalesce_non_reading_client PUBLIC "${PROJECT_SOURCE_DIR}")
target_link_libraries(coalesce_non_reading_client PUBLIC absl::status absl::statusor
  absl::strings absl::time)
