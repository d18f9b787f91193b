# End-to-end tests: real processes on loopback (coalesce-server, coalesce-bench, Debian's
# prometheus and nginx), driven by Python scripts run with Debian's /usr/bin/python3
# (python3-grpcio, python3-protobuf). Included from tests/CMakeLists.txt.
#
#   ctest -R e2e --output-on-failure
#
# scripts/install-deps.sh installs every program they need, so a missing one (the scripts exit
# 77) fails the test rather than skipping it. Every test picks free ports at run time, so they
# may run in parallel.
find_program(COALESCE_E2E_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT COALESCE_E2E_PYTHON)
  find_program(COALESCE_E2E_PYTHON NAMES python3)
endif()

if(COALESCE_E2E_PYTHON AND TARGET coalesce-server AND TARGET coalesce-bench)
  set(e2e_dir ${CMAKE_CURRENT_LIST_DIR})

  add_test(NAME e2e_prometheus
    COMMAND ${COALESCE_E2E_PYTHON} ${e2e_dir}/prometheus_e2e_test.py --require_memory
      --server $<TARGET_FILE:coalesce-server>
      --bench $<TARGET_FILE:coalesce-bench>)

  add_test(NAME e2e_nginx_replicas
    COMMAND ${COALESCE_E2E_PYTHON} ${e2e_dir}/nginx_replicas_test.py
      --server $<TARGET_FILE:coalesce-server>
      --protoc $<TARGET_FILE:protobuf::protoc>)

  # The files in deploy/, checked by the tools that will read them (promtool, nginx -t,
  # systemd-analyze verify, xmllint with the plist DTD) or, where none runs here, by structure.
  foreach(part prometheus nginx systemd launchd kubernetes kserve homebrew docker grafana)
    add_test(NAME e2e_deploy_${part}
      COMMAND ${COALESCE_E2E_PYTHON} ${e2e_dir}/deploy_files_test.py ${part}
        --server $<TARGET_FILE:coalesce-server>)
  endforeach()

  # cmake --install into a temporary prefix and the Debian package (cmake/install.cmake).
  if(EXISTS /usr/bin/dpkg-deb)
    add_test(NAME e2e_install
      COMMAND ${COALESCE_E2E_PYTHON} ${e2e_dir}/install_test.py
        --build ${PROJECT_BINARY_DIR} --version ${PROJECT_VERSION})
    set_tests_properties(e2e_install PROPERTIES TIMEOUT 600 LABELS e2e)
  endif()

  set_tests_properties(e2e_prometheus e2e_nginx_replicas PROPERTIES
    TIMEOUT 120 LABELS e2e)
  foreach(part prometheus nginx systemd launchd kubernetes kserve homebrew docker grafana)
    set_tests_properties(e2e_deploy_${part} PROPERTIES TIMEOUT 60 LABELS e2e)
  endforeach()
  include(${e2e_dir}/interop.cmake)
endif()
