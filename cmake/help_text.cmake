# Writes PROGRAM's --help text to OUTPUT (cmake -P; used by install.cmake). abseil's --help
# exits 1, so the exit status is not checked; an empty text is.
execute_process(COMMAND ${PROGRAM} --help OUTPUT_VARIABLE text ERROR_VARIABLE err
  RESULT_VARIABLE rc)
if(text STREQUAL "")
  set(text "${err}")
endif()
if(text STREQUAL "")
  message(FATAL_ERROR "${PROGRAM} --help printed nothing (exit ${rc})")
endif()
file(WRITE ${OUTPUT} "${text}")
