# Security and operations: TLS, mutual TLS, bearer tokens, message limits, draining, JSON logs
# and coalesce-server's command line. Included from tests/CMakeLists.txt.
#
#   ctest -R 'Security|Token|BearerToken|JsonLog|ServerLimits|Drain|ServerBinary|HostileRequest' \
#     --output-on-failure
#   ctest -R 'TlsReload|RotatingTls|CredentialReload' --output-on-failure   # rotation
#
# The TLS tests make their certificates with the openssl tool (scripts/install-deps.sh).

# Units: no server.
add_executable(security_unit_tests bearer_token_authorizer_test.cc file_change_watch_test.cc
  file_descriptor_limit_test.cc json_log_formatter_test.cc)
target_link_libraries(security_unit_tests PRIVATE coalesce_server_lib GTest::gtest_main)
gtest_discover_tests(security_unit_tests DISCOVERY_TIMEOUT 60)

# TLS, mutual TLS and tokens over loopback, the echo demo model.
add_executable(security_tests security_test.cc)
target_link_libraries(security_tests PRIVATE coalesce_server_lib coalesce_client_security
  GTest::gtest_main)
gtest_discover_tests(security_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120)

# Hostile names and contents over loopback: huge names cut in status messages, line breaks
# escaped in log lines, typed contents with a stray field refused.
add_executable(hostile_request_tests hostile_request_test.cc)
target_link_libraries(hostile_request_tests PRIVATE coalesce_server_lib GTest::gtest_main)
gtest_discover_tests(hostile_request_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120)

# Oversized messages and draining over loopback.
add_executable(server_lifecycle_tests server_lifecycle_test.cc)
target_link_libraries(server_lifecycle_tests PRIVATE coalesce_server_lib GTest::gtest_main
  absl::synchronization)
gtest_discover_tests(server_lifecycle_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120)

# The coalesce-server binary's exit statuses and --check-config.
if(TARGET coalesce-server)
  add_executable(server_binary_tests server_binary_test.cc)
  target_link_libraries(server_binary_tests PRIVATE GTest::gtest_main absl::strings absl::status
    absl::statusor)
  target_compile_definitions(server_binary_tests PRIVATE
    COALESCE_SERVER_BINARY="$<TARGET_FILE:coalesce-server>")
  target_include_directories(server_binary_tests PRIVATE ${PROJECT_SOURCE_DIR})
  add_dependencies(server_binary_tests coalesce-server)
  gtest_discover_tests(server_binary_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120)
endif()

# coalesce-server re-reads its certificates and token file on SIGHUP.
if(TARGET coalesce-server)
  add_executable(credential_reload_tests credential_reload_test.cc)
  target_link_libraries(credential_reload_tests PRIVATE coalesce_proto gRPC::grpc++
    GTest::gtest_main absl::strings absl::status absl::statusor absl::time)
  target_compile_definitions(credential_reload_tests PRIVATE
    COALESCE_SERVER_BINARY="$<TARGET_FILE:coalesce-server>")
  target_include_directories(credential_reload_tests PRIVATE ${PROJECT_SOURCE_DIR})
  add_dependencies(credential_reload_tests coalesce-server)
  gtest_discover_tests(credential_reload_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 180)
endif()
