# The gRPC endpoint against clients that misbehave at the transport: bytes that are no request,
# clients that never read, idle connections. Included from tests/CMakeLists.txt.
#
#   ctest -R 'Transport' --output-on-failure
if(TARGET coalesce_non_reading_client)
  add_executable(transport_tests transport_test.cc)
  target_link_libraries(transport_tests PRIVATE coalesce_server_lib coalesce_non_reading_client
    GTest::gtest_main)
  target_include_directories(transport_tests PRIVATE ${PROJECT_SOURCE_DIR})
  gtest_discover_tests(transport_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
endif()

