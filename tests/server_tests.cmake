# The server over real gRPC on loopback: integration with the real model, the metrics endpoint,
# deadlines, streaming, flags, every program's command line, the allocator settings and NVML.
# Real gRPC over loopback, the real model, the real metrics endpoint.
add_executable(server_integration_tests server_integration_test.cc)
target_link_libraries(server_integration_tests PRIVATE coalesce_server_lib coalesce_torch
  GTest::gtest_main)
gtest_discover_tests(server_integration_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)

# The /metrics HTTP endpoint.
add_executable(metrics_endpoint_tests metrics_endpoint_test.cc)
target_link_libraries(metrics_endpoint_tests PRIVATE coalesce_server_lib GTest::gtest_main)
gtest_discover_tests(metrics_endpoint_tests DISCOVERY_TIMEOUT 60)

# Deadlines, shedding and cancellation over loopback, with a slow counting fake model.
add_executable(deadline_integration_tests deadline_integration_test.cc)
target_link_libraries(deadline_integration_tests PRIVATE coalesce_server_lib GTest::gtest_main)
gtest_discover_tests(deadline_integration_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)

# ModelStreamInfer over loopback with the echo model; the inference calls' bytes, parsed and
# serialized (server/wire_messages.h).
add_executable(stream_infer_tests stream_infer_test.cc wire_messages_test.cc wire_requests_test.cc)
target_link_libraries(stream_infer_tests PRIVATE coalesce_server_lib GTest::gtest_main)
gtest_discover_tests(stream_infer_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)

# coalesce-server's flags: validation, and the options parsed from them.
add_executable(server_flags_tests server_flags_test.cc)
target_link_libraries(server_flags_tests PRIVATE coalesce_server_flags GTest::gmock
  GTest::gtest_main)
gtest_discover_tests(server_flags_tests DISCOVERY_TIMEOUT 60)

# Every program's command line: --help exits 0, a wrong command line exits 2 (runs the binaries).
add_executable(command_line_tests command_line_test.cc)
target_link_libraries(command_line_tests PRIVATE GTest::gtest_main absl::strings)
target_include_directories(command_line_tests PRIVATE ${PROJECT_SOURCE_DIR})
set(coalesce_user_programs coalesce-server coalesce-client coalesce-bench coalesce-echo-server
  coalesce-stress coalesce-model-ceiling coalesce-engine-bench coalesce-poison-model)
foreach(program ${coalesce_user_programs})
  string(TOUPPER "${program}" define)
  string(REPLACE "-" "_" define "${define}")
  target_compile_definitions(command_line_tests PRIVATE
    ${define}_BINARY="$<TARGET_FILE:${program}>")
endforeach()
add_dependencies(command_line_tests ${coalesce_user_programs})
gtest_discover_tests(command_line_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120)

# The malloc arena cap and the trimmer against glibc itself; sanitizers replace glibc's
# allocator, so only the plain build has them (Linux only: glibc).
if(NOT COALESCE_SANITIZE AND CMAKE_SYSTEM_NAME STREQUAL "Linux")
  add_executable(malloc_arenas_tests malloc_arenas_test.cc malloc_trimmer_test.cc)
  target_link_libraries(malloc_arenas_tests PRIVATE coalesce_server_lib GTest::gtest_main)
  gtest_discover_tests(malloc_arenas_tests DISCOVERY_TIMEOUT 60)
endif()

# NVML's GPU utilisation with a fake NVML, and a server on a CUDA device without NVML (issue 22).
add_executable(gpu_utilization_tests gpu_utilization_test.cc)
target_link_libraries(gpu_utilization_tests PRIVATE coalesce_server_lib GTest::gtest_main)
gtest_discover_tests(gpu_utilization_tests DISCOVERY_TIMEOUT 60)
