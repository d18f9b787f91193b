# Unit tests of the load generator (client/bench.cmake): statistics, schedules, formats, and
# a loopback run against an in-process fake server.
if(TARGET coalesce_loadgen)
  add_executable(load_generator_test ${CMAKE_CURRENT_LIST_DIR}/load_generator_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/load_generator_loopback_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/length_range_test.cc)
  target_link_libraries(load_generator_test PRIVATE coalesce_loadgen GTest::gtest
    GTest::gtest_main absl::synchronization Threads::Threads)
  include(GoogleTest)
  gtest_discover_tests(load_generator_test DISCOVERY_TIMEOUT 60)
endif()

# coalesce-stress with poison traffic (bench/poison-stress.sh): a few rounds against a real
# server whose TorchScript model raises on some values and asks for 2^50 bytes on others; every
# valid answer exact, every poison request answered INTERNAL, at least one batch split.
if(TARGET coalesce-server AND TARGET coalesce-stress AND TARGET coalesce-poison-model)
  add_test(NAME stress_poison
    COMMAND bash ${PROJECT_SOURCE_DIR}/bench/poison-stress.sh $<TARGET_FILE:coalesce-server>
      $<TARGET_FILE:coalesce-stress> $<TARGET_FILE:coalesce-poison-model> 3)
  set_tests_properties(stress_poison PROPERTIES TIMEOUT 300)
endif()

# coalesce-stress against the echo backend with slow readers and slow clients beside the mixed
# traffic (bench/echo-stress.sh): a few rounds in CI, 100 for the table in bench/RESULTS.md.
if(TARGET coalesce-server AND TARGET coalesce-stress AND TARGET coalesce-client)
  add_test(NAME stress_echo
    COMMAND bash ${PROJECT_SOURCE_DIR}/bench/echo-stress.sh $<TARGET_FILE:coalesce-server>
      $<TARGET_FILE:coalesce-stress> $<TARGET_FILE:coalesce-client> 5)
  set_tests_properties(stress_echo PROPERTIES TIMEOUT 300)
endif()

# The Python batching peer (bench/peers/python_batching_server.py) that the benchmarks compare
# against: its own self-test serves on a free port and checks answers, batching, errors and a call
# without a deadline. Linux only: it needs Debian's python3-grpcio, python3-protobuf and python3-torch
# (install-deps.sh).
find_program(COALESCE_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(COALESCE_SYSTEM_PYTHON AND CMAKE_SYSTEM_NAME STREQUAL "Linux")
  add_test(NAME python_peer_self_test
    COMMAND ${COALESCE_SYSTEM_PYTHON} ${PROJECT_SOURCE_DIR}/bench/peers/python_batching_server.py
      --self_test --device=cpu)
  set_tests_properties(python_peer_self_test PROPERTIES TIMEOUT 300)
  # The benchmark models of bench/make_models.py (a small encoder here; ResNet-50 takes minutes
  # on 2 cores: bench/check_models.py --models resnet50,encoder checks both) load in
  # coalesce-server and answer the same batched as alone, the encoder also padded to buckets.
  if(TARGET coalesce-server)
    add_test(NAME bench_models_check
      COMMAND ${COALESCE_SYSTEM_PYTHON} ${PROJECT_SOURCE_DIR}/bench/check_models.py
        --server=$<TARGET_FILE:coalesce-server> --models=encoder,encoder_padded)
    set_tests_properties(bench_models_check PROPERTIES TIMEOUT 300)
  endif()
endif()
