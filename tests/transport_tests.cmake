# The gRPC endpoint against clients that misbehave at the transport: bytes that are no request,
# clients that never read, idle connections. Included from tests/CMakeLists.txt.
#
#   ctest -R 'Transport' --output-on-failure
if(TARGET coalesce_non_reading_client)
  add_executable(transport_tests transport_test.cc shutdown_watchdog_test.cc
    listener_watch_test.cc)
  target_link_libraries(transport_tests PRIVATE coalesce_server_lib coalesce_non_reading_client
    GTest::gtest_main)
  target_include_directories(transport_tests PRIVATE ${PROJECT_SOURCE_DIR})
  gtest_discover_tests(transport_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
endif()

# coalesce-server stops in time after SIGTERM whatever is stuck (a forward pass that runs on),
# and keeps accepting at its open-file limit.
if(TARGET coalesce-server)
  add_executable(server_shutdown_tests shutdown_test.cc fd_exhaustion_test.cc)
  target_link_libraries(server_shutdown_tests PRIVATE coalesce_proto coalesce_test_torchscript
    gRPC::grpc++ GTest::gtest_main absl::strings absl::time)
  target_compile_definitions(server_shutdown_tests PRIVATE
    COALESCE_SERVER_BINARY="$<TARGET_FILE:coalesce-server>")
  target_include_directories(server_shutdown_tests PRIVATE ${PROJECT_SOURCE_DIR})
  add_dependencies(server_shutdown_tests coalesce-server)
  gtest_discover_tests(server_shutdown_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
endif()
