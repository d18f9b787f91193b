# coalesce-bench: load generator for any Open Inference Protocol (KServe v2 gRPC) server.
# coalesce_loadgen holds everything but main(), so tests/load_generator_test.cc can use it.
add_library(coalesce_loadgen STATIC
  ${CMAKE_CURRENT_LIST_DIR}/arrival_schedule.cc
  ${CMAKE_CURRENT_LIST_DIR}/latency_recorder.cc
  ${CMAKE_CURRENT_LIST_DIR}/length_range.cc
  ${CMAKE_CURRENT_LIST_DIR}/level_list.cc
  ${CMAKE_CURRENT_LIST_DIR}/load_generator.cc
  ${CMAKE_CURRENT_LIST_DIR}/request_builder.cc
  ${CMAKE_CURRENT_LIST_DIR}/result_writer.cc
  ${CMAKE_CURRENT_LIST_DIR}/shared_memory_slots.cc
  ${CMAKE_CURRENT_LIST_DIR}/status_counts.cc)
# Includes read as "client/load_generator.h".
target_include_directories(coalesce_loadgen PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(coalesce_loadgen
  PUBLIC coalesce_proto coalesce_client_security absl::status absl::statusor absl::strings absl::str_format absl::time
    absl::synchronization
  PRIVATE absl::random_random Threads::Threads)

add_executable(coalesce-bench ${CMAKE_CURRENT_LIST_DIR}/coalesce_bench.cc)
target_link_libraries(coalesce-bench PRIVATE coalesce_loadgen coalesce_client_security_flags
  coalesce_flag_parsing
  absl::flags absl::flags_parse
  absl::flags_usage absl::flags_config absl::flags_reflection absl::strings absl::str_format
  absl::synchronization absl::time)
