# Unit tests of the load generator (client/bench.cmake): statistics, schedules, formats, and
# a loopback run against an in-process fake server.
if(TARGET coalesce_loadgen)
  add_executable(load_generator_test ${CMAKE_CURRENT_LIST_DIR}/load_generator_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/load_generator_loopback_test.cc)
  target_link_libraries(load_generator_test PRIVATE coalesce_loadgen GTest::gtest
    GTest::gtest_main absl::synchronization Threads::Threads)
  include(GoogleTest)
  gtest_discover_tests(load_generator_test DISCOVERY_TIMEOUT 60)
endif()
