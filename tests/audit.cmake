# valise-audit (issue 5): tamper tests on a real relay's data, and the check
# that the verifier links no signing code.
if(TARGET valise-audit AND TARGET valise-relay)
  add_executable(audit_test_tamper ${CMAKE_CURRENT_LIST_DIR}/audit/test_tamper.c)
  # The test itself (never valise-audit) opens copies of the relay's LMDB
  # read-write to tamper with them, and forges checkpoints with note_sign.
  target_link_libraries(audit_test_tamper PRIVATE vtest_relay_support vcore PkgConfig::CMOCKA
                        PkgConfig::LMDB PkgConfig::SODIUM)
  target_compile_definitions(audit_test_tamper PRIVATE
    VALISE_RELAY_BIN="$<TARGET_FILE:valise-relay>"
    VALISE_AUDIT_BIN="$<TARGET_FILE:valise-audit>")
  add_dependencies(audit_test_tamper valise-relay valise-audit)
  add_test(NAME audit/test_tamper COMMAND audit_test_tamper)
  set_tests_properties(audit/test_tamper PROPERTIES TIMEOUT 180 LABELS audit)

  # STYLE.md habit 7: the auditor cannot sign. No signing symbol may be in
  # the binary, defined or imported.
  add_test(NAME audit/links_no_signing_code
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/audit/nosign.sh $<TARGET_FILE:valise-audit>)
  add_test(NAME audit/cli_help COMMAND valise-audit --help)
  add_test(NAME audit/cli_no_args COMMAND valise-audit)
  set_tests_properties(audit/cli_no_args PROPERTIES WILL_FAIL TRUE)
endif()
