# Install rules (`cmake --install`, `make install`) and the Debian package (`make package`, CPack).
# Included from the top-level CMakeLists.txt after every target is defined.
#
# Layout under the prefix (GNUInstallDirs):
#   bin/coalesce-server, bin/coalesce-client, bin/coalesce-bench
#   share/coalesce/server.flags             the demo flag file, as in config/
#   share/coalesce/models/                  the example repository (config/models/)
#   share/coalesce/launchd/                 the launchd plist (macOS; deploy/launchd/)
#   share/doc/coalesce/                     README, docs/, and each program's --help text
#   <sysconfdir>/coalesce/server.flags      the flag file the service reads (kept on upgrade)
#   lib/systemd/system/coalesce.service     the systemd unit (Linux; installed, not enabled)
# <sysconfdir> is /etc for the prefix /usr (the package) and <prefix>/etc otherwise; the unit's
# paths are written for the prefix at install time, so one build installs anywhere.
include(GNUInstallDirs)

install(TARGETS coalesce-server coalesce-client coalesce-bench
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES config/server.flags DESTINATION ${CMAKE_INSTALL_DATADIR}/coalesce)
install(DIRECTORY config/models/ DESTINATION ${CMAKE_INSTALL_DATADIR}/coalesce/models)
install(FILES deploy/launchd/com.coalesce.server.plist deploy/launchd/README.md
  DESTINATION ${CMAKE_INSTALL_DATADIR}/coalesce/launchd)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)

# Each program's --help, generated from the binary at build time, so the installed text is
# always the flags that binary has (the man-page-style reference; `coalesce-server --help`
# prints the same).
foreach(program coalesce-server coalesce-client coalesce-bench)
  add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/help/${program}.txt
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/help
    COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:${program}>
      -DOUTPUT=${PROJECT_BINARY_DIR}/help/${program}.txt -P ${PROJECT_SOURCE_DIR}/cmake/help_text.cmake
    DEPENDS ${program} ${PROJECT_SOURCE_DIR}/cmake/help_text.cmake
    COMMENT "--help text of ${program}")
  list(APPEND coalesce_help_texts ${PROJECT_BINARY_DIR}/help/${program}.txt)
endforeach()
add_custom_target(coalesce_help_texts ALL DEPENDS ${coalesce_help_texts})
install(FILES ${coalesce_help_texts} DESTINATION ${CMAKE_INSTALL_DOCDIR}/help)

# The service's flag file and the systemd unit, with paths for the prefix in use at install time
# (CPack installs with the prefix /usr; `make install` with /usr/local by default). An existing
# flag file is kept: it is the operator's.
install(CODE "set(coalesce_source_dir \"${PROJECT_SOURCE_DIR}\")
set(coalesce_bindir \"${CMAKE_INSTALL_BINDIR}\")")
install(CODE [[
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(coalesce_conf_dir /etc/coalesce)
  else()
    set(coalesce_conf_dir "${CMAKE_INSTALL_PREFIX}/etc/coalesce")
  endif()
  if(NOT EXISTS "$ENV{DESTDIR}${coalesce_conf_dir}/server.flags")
    file(INSTALL "${coalesce_source_dir}/config/server.flags" DESTINATION "${coalesce_conf_dir}")
  endif()
  if(NOT APPLE)
    file(READ "${coalesce_source_dir}/deploy/systemd/coalesce.service" unit)
    string(REPLACE "/usr/local/bin/coalesce-server"
      "${CMAKE_INSTALL_PREFIX}/${coalesce_bindir}/coalesce-server" unit "${unit}")
    string(REPLACE "/etc/coalesce/server.flags" "${coalesce_conf_dir}/server.flags" unit "${unit}")
    string(REPLACE "file:///usr/local/share/doc/coalesce/README.md"
      "file://${CMAKE_INSTALL_PREFIX}/share/doc/coalesce/README.md" unit "${unit}")
    set(staged "${CMAKE_CURRENT_BINARY_DIR}/coalesce.service.staged")
    file(WRITE "${staged}" "${unit}")
    file(INSTALL "${staged}" DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
      RENAME coalesce.service)
  endif()
]])

# The Debian package: `make package` (cpack -G DEB in the build directory).
set(CPACK_PACKAGE_NAME coalesce)
set(CPACK_PACKAGE_VENDOR "coalesce developers")
set(CPACK_PACKAGE_CONTACT "coalesce developers <coalesce@users.noreply.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "gRPC inference server that batches small requests for the accelerator")
set(CPACK_PACKAGE_DESCRIPTION
  "coalesce serves TorchScript models over the Open Inference Protocol (KServe v2 gRPC, Triton's
extensions) and coalesces many small concurrent requests into large batches under per-request
deadlines. It exports Prometheus metrics and ships a systemd unit (installed, not enabled).")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
# Install into a staging DESTDIR with the prefix /usr, so that the rules above see the prefix the
# package will have (and put the flag file under /etc).
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/coalesce-dev/coalesce")
# Runtime libraries by package name, from the binaries' own ELF dependencies (dpkg-shlibdeps).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The flag file is the operator's: dpkg keeps local changes on upgrade.
configure_file(${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
  ${PROJECT_BINARY_DIR}/packaging/debian/conffiles COPYONLY)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/packaging/debian/conffiles)
include(CPack)
