# Issue 15: models from a repository the test writes answer what Triton would give them (no rows
# dimension for max_batch_size 0, declared types kept, reshape), over real gRPC on loopback.
add_executable(triton_conformance_tests ${CMAKE_CURRENT_LIST_DIR}/triton_conformance_test.cc)
target_link_libraries(triton_conformance_tests PRIVATE coalesce_server_lib coalesce_torch_factory
  coalesce_test_torchscript GTest::gtest_main)
gtest_discover_tests(triton_conformance_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
