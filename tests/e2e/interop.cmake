# Interoperability: Python grpcio with messages generated from tests/e2e/oip/ (an independent
# transcription of the published KServe v2 / Triton protocol, not coalesce's proto/) against the
# real coalesce-server running the demo model on LibTorch's CPU backend. Included from e2e.cmake,
# which defines COALESCE_E2E_PYTHON and e2e_dir.
#
#   ctest -R e2e_interop --output-on-failure
add_test(NAME e2e_interop
  COMMAND ${COALESCE_E2E_PYTHON} ${e2e_dir}/interop_test.py
    --server $<TARGET_FILE:coalesce-server>
    --protoc $<TARGET_FILE:protobuf::protoc>)
set_tests_properties(e2e_interop PROPERTIES TIMEOUT 120 LABELS e2e)
