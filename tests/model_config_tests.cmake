# config.pbtxt parsing and mapping (repository/model_config.h): pure functions, no Torch, no network.
add_executable(model_config_tests ${CMAKE_CURRENT_LIST_DIR}/model_config_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/model_config_reshape_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/instance_placement_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/padding_config_test.cc)
target_link_libraries(model_config_tests PRIVATE coalesce_repository GTest::gmock GTest::gtest_main)
gtest_discover_tests(model_config_tests DISCOVERY_TIMEOUT 60)
# The example repository (config/models/) is read from the source tree.
target_compile_definitions(model_config_tests PRIVATE COALESCE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
