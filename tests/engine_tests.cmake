# The engine and execution layers: requests, queue, policies, batcher, executor and its
# copies, with fakes (core_tests: no Torch, no network; the TSan job runs it), and the LibTorch
# backend on CPU (torch_backend_tests).
# Core logic with fakes: no Torch, no network.
add_executable(core_tests
  address_ranges_test.cc
  batcher_test.cc
  client_text_test.cc
  deadline_policy_test.cc
  device_busy_test.cc
  device_test.cc
  executor_test.cc
  fault_injection_test.cc
  half_test.cc
  infer_request_test.cc
  latency_model_test.cc
  padding_test.cc
  metrics_test.cc
  model_statistics_test.cc
  request_queue_test.cc
  size_or_delay_policy_test.cc
  spread_sink_test.cc)
target_link_libraries(core_tests PRIVATE coalesce_serving GTest::gtest_main absl::synchronization)
gtest_discover_tests(core_tests DISCOVERY_TIMEOUT 60)


# The LibTorch backend on CPU.
add_executable(torch_backend_tests torch_backend_test.cc)
target_link_libraries(torch_backend_tests PRIVATE coalesce_torch coalesce_torch_bench
  coalesce_torch_testing coalesce_test_torchscript GTest::gtest_main)
gtest_discover_tests(torch_backend_tests DISCOVERY_TIMEOUT 60)


# Execution-engine tests (issue 5) that need no Torch: the metrics sampled from a backend at
# scrape time. The executor's and TorchBackend's own tests live in core_tests and
# torch_backend_tests.
add_executable(engine_metrics_tests ${CMAKE_CURRENT_LIST_DIR}/model_metrics_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/served_model_devices_test.cc)
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
