# Writes PROGRAM's --help text to OUTPUT (cmake -P; used by install.cmake). Every coalesce
# program exits 0 on --help (common/flag_parsing.h); anything else, or an empty text, fails.
execute_process(COMMAND ${PROGRAM} --help OUTPUT_VARIABLE text ERROR_VARIABLE err
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} --help exited ${rc}: ${err}")
endif()
if(text STREQUAL "")
  set(text "${err}")
endif()
if(text STREQUAL "")
  message(FATAL_ERROR "${PROGRAM} --help printed nothing")
endif()
file(WRITE ${OUTPUT} "${text}")
