# Triton's shared-memory extension: key and bounds checks, the region registry and request
# tensors without a server, then a real server over loopback (round trips, hostile requests,
# unregistering under load) and coalesce-bench's shared-memory slots against it.
add_executable(shared_memory_tests
  cuda_shared_memory_test.cc
  request_validator_external_test.cc
  shared_memory_integration_test.cc
  shared_memory_test.cc)
target_link_libraries(shared_memory_tests PRIVATE coalesce_server_lib GTest::gtest_main)
if(TARGET coalesce_loadgen)
  target_sources(shared_memory_tests PRIVATE shared_memory_slots_test.cc)
  target_link_libraries(shared_memory_tests PRIVATE coalesce_loadgen)
endif()
gtest_discover_tests(shared_memory_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
