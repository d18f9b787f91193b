# Triton conformance of the protocol surface (issue 15): readiness and model-control answers,
# ServerMetadata's extensions against the RPCs, load parameters, the logging and trace
# extensions. Real servers over loopback with small TorchScript models written by the tests.
add_executable(protocol_tests
  ${CMAKE_CURRENT_LIST_DIR}/load_parameters_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/log_settings_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/model_control_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/protocol_extensions_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/trace_setting_test.cc)
target_link_libraries(protocol_tests PRIVATE coalesce_server_lib coalesce_torch_factory
  coalesce_test_torchscript GTest::gtest_main)
gtest_discover_tests(protocol_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)

# The server's adapters from the wire message: validation, tensor parameters, scheduling.
add_executable(request_adapter_tests request_validator_test.cc scheduling_test.cc)
target_link_libraries(request_adapter_tests PRIVATE coalesce_request_adapters GTest::gtest_main)
gtest_discover_tests(request_adapter_tests DISCOVERY_TIMEOUT 60)
