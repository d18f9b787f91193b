# coalesce-poison-model (included by bench/CMakeLists.txt): writes a repository with a small
# TorchScript model that fails on poison inputs, for coalesce-stress --poison and
# bench/poison-stress.sh (run in CI by tests/bench_tests.cmake).
add_executable(coalesce-poison-model poison_model.cc)
target_link_libraries(coalesce-poison-model PRIVATE coalesce_flag_parsing ${TORCH_LIBRARIES}
  absl::flags absl::strings)
target_compile_options(coalesce-poison-model PRIVATE ${TORCH_CXX_FLAGS})
