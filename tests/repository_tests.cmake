# A model repository of small TorchScript models written by the tests, served over loopback.
add_library(coalesce_test_torchscript STATIC torchscript_models.cc)
target_link_libraries(coalesce_test_torchscript PUBLIC coalesce_repository PRIVATE ${TORCH_LIBRARIES})
target_compile_options(coalesce_test_torchscript PRIVATE ${TORCH_CXX_FLAGS})

add_executable(repository_tests repository_test.cc repository_limits_test.cc
  repository_placement_test.cc padding_integration_test.cc)
target_link_libraries(repository_tests PRIVATE coalesce_server_lib coalesce_torch_factory
  coalesce_test_torchscript GTest::gtest_main)
gtest_discover_tests(repository_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
