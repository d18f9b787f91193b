# Execution-engine tests (issue 5) that need no Torch: the metrics sampled from a backend at
# scrape time. The executor's and TorchBackend's own tests live in core_tests and
# torch_backend_tests.
add_executable(engine_metrics_tests ${CMAKE_CURRENT_LIST_DIR}/model_metrics_test.cc)
target_link_libraries(engine_metrics_tests PRIVATE coalesce_serving GTest::gtest_main)
gtest_discover_tests(engine_metrics_tests DISCOVERY_TIMEOUT 60)

# The executor's copy threads (Executor::Options::copy_threads) and their pool: split gather and
# scatter answer byte for byte as the worker alone. Fakes only, no Torch. Part of core_tests, so
# that the TSan job (make test-tsan, core_tests only) checks them too.
target_sources(core_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/copy_pool_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/executor_copy_test.cc)

# A poison request (a value the model raises on, a huge allocation, an output of another type)
# among many concurrent valid ones, over loopback to a TorchScript model the test writes: the
# executor's split and retry answers every valid request (execution/executor.h).
add_executable(poison_request_tests ${CMAKE_CURRENT_LIST_DIR}/poison_request_test.cc)
target_link_libraries(poison_request_tests PRIVATE coalesce_server_lib coalesce_torch_factory
  coalesce_test_torchscript GTest::gtest_main)
gtest_discover_tests(poison_request_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
