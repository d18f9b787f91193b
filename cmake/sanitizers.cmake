# Sanitizer and fuzzing builds, included from the top-level CMakeLists.txt after the project's
# own compile options so that every target below gets the same instrumentation.
#
#   -DCOALESCE_SANITIZE=address,undefined   ASan + UBSan (make test-asan)
#   -DCOALESCE_SANITIZE=thread              TSan; build core_tests only (make test-tsan)
#   -DCOALESCE_FUZZ=ON                      clang only: coverage-instrument everything and add
#                                           the libFuzzer targets in fuzz/ (make test-fuzz)
#
# Third-party libraries (LibTorch, gRPC, protobuf, abseil) come from the distribution and are
# not instrumented: ASan still sees every heap access through its malloc, but TSan does not see
# their synchronisation, which is why the TSan job runs only the core tests.
set(COALESCE_SANITIZE "" CACHE STRING
    "Sanitizers to build with: empty for none, 'address,undefined' or 'thread'")
option(COALESCE_FUZZ "Build the libFuzzer targets in fuzz/ (requires clang)" OFF)

if(COALESCE_SANITIZE)
  if(COALESCE_SANITIZE MATCHES "thread" AND COALESCE_SANITIZE MATCHES "address")
    message(FATAL_ERROR "COALESCE_SANITIZE: thread and address sanitizers cannot be combined, "
                        "got '${COALESCE_SANITIZE}'")
  endif()
  message(STATUS "coalesce: building with -fsanitize=${COALESCE_SANITIZE}")
  # -O1 keeps the instrumented tests fast enough while leaving stacks readable; a finding
  # aborts (no recovery) so that ctest reports it as a failure.
  add_compile_options(-fsanitize=${COALESCE_SANITIZE} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer -O1 -g)
  add_link_options(-fsanitize=${COALESCE_SANITIZE})

  # `coalesce_sanitizer_tests`: every executable defined under tests/, whoever adds it, so that
  # `make test-asan` builds the tests and not the programs. Collected once tests/ is processed.
  # Under TSan each also gets tsan_absl_annotations.cc, which makes abseil's (uninstrumented)
  # Mutex, CondVar and Notification visible to TSan; see that file.
  if(CMAKE_VERSION VERSION_LESS 3.19)
    message(FATAL_ERROR "COALESCE_SANITIZE needs CMake 3.19 or newer, this is ${CMAKE_VERSION}")
  endif()
  function(coalesce_add_sanitizer_tests_target)
    add_custom_target(coalesce_sanitizer_tests)
    if(NOT COALESCE_BUILD_TESTS)
      return()
    endif()
    get_property(targets DIRECTORY "${PROJECT_SOURCE_DIR}/tests" PROPERTY BUILDSYSTEM_TARGETS)
    foreach(target IN LISTS targets)
      get_target_property(type ${target} TYPE)
      if(type STREQUAL "EXECUTABLE")
        add_dependencies(coalesce_sanitizer_tests ${target})
        if(COALESCE_SANITIZE MATCHES "thread")
          target_sources(${target} PRIVATE "${PROJECT_SOURCE_DIR}/cmake/tsan_absl_annotations.cc")
          target_link_libraries(${target} PRIVATE absl::synchronization ${CMAKE_DL_LIBS})
        endif()
      endif()
    endforeach()
  endfunction()
  cmake_language(DEFER DIRECTORY "${PROJECT_SOURCE_DIR}" CALL coalesce_add_sanitizer_tests_target)
endif()

if(COALESCE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "COALESCE_FUZZ needs clang (libFuzzer); configure with "
                        "-DCMAKE_CXX_COMPILER=clang++, got ${CMAKE_CXX_COMPILER_ID}")
  endif()
  # Coverage feedback from our code and the generated protos; the fuzzers themselves link
  # libFuzzer's main with -fsanitize=fuzzer (fuzz/CMakeLists.txt).
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
