# Triton's shared-memory extension: key and bounds checks, the region registry and request
# tensors without a server, then a real server over loopback (round trips, hostile requests,
# unregistering under load).
add_executable(shared_memory_tests
  request_validator_external_test.cc
  shared_memory_integration_test.cc
  shared_memory_test.cc)
target_link_libraries(shared_memory_tests PRIVATE coalesce_server_lib GTest::gtest_main)
gtest_discover_tests(shared_memory_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
