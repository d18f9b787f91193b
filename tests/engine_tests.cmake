# Execution-engine tests (issue 5) that need no Torch: the metrics sampled from a backend at
# scrape time. The executor's and TorchBackend's own tests live in core_tests and
# torch_backend_tests.
add_executable(engine_metrics_tests ${CMAKE_CURRENT_LIST_DIR}/model_metrics_test.cc)
target_link_libraries(engine_metrics_tests PRIVATE coalesce_core GTest::gtest_main)
gtest_discover_tests(engine_metrics_tests DISCOVERY_TIMEOUT 60)
