# Relay integration tests: the real valise-relay on a free loopback port, real
# LMDB in a temporary directory, real websockets from a raw-socket client.
add_library(vtest_relay_support STATIC
  ${CMAKE_CURRENT_LIST_DIR}/support/wsclient.c
  ${CMAKE_CURRENT_LIST_DIR}/support/relaytest.c)
target_include_directories(vtest_relay_support PUBLIC ${CMAKE_CURRENT_LIST_DIR}/support)
target_link_libraries(vtest_relay_support PUBLIC vcore PkgConfig::SODIUM)
target_compile_definitions(vtest_relay_support PRIVATE
  VALISE_RELAY_BIN="$<TARGET_FILE:valise-relay>")

file(GLOB VALISE_RELAY_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/relay/test_*.c)
foreach(src ${VALISE_RELAY_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(relay_${name} ${src})
  # LMDB for the tests that read the stopped relay's files (test_audit, test_dedupe, ...).
  target_link_libraries(relay_${name} PRIVATE vtest_relay_support vcore PkgConfig::CMOCKA
                        PkgConfig::LMDB)
  add_dependencies(relay_${name} valise-relay)
  add_test(NAME relay/${name} COMMAND relay_${name})
  set_tests_properties(relay/${name} PROPERTIES TIMEOUT 180 LABELS relay)
endforeach()

# Command-line contract: --help succeeds; missing flags and plain ws:// on a
# non-loopback address are refused with a non-zero status.
add_test(NAME relay/cli_help COMMAND valise-relay --help)
add_test(NAME relay/cli_missing_flags COMMAND valise-relay --listen 127.0.0.1:0)
add_test(NAME relay/cli_refuses_plain_non_loopback COMMAND valise-relay --data /nonexistent
         --org-pub /nonexistent --directory /nonexistent --relay-cert /nonexistent
         --listen 0.0.0.0:7443)
add_test(NAME relay/cli_bad_number COMMAND valise-relay --data d --org-pub o --directory x
         --listen 127.0.0.1:0 --max-frame 12abc)
# Each refusal must name its reason (a crash would print none of these).
set_tests_properties(relay/cli_missing_flags PROPERTIES
                     PASS_REGULAR_EXPRESSION "--data, --org-pub, --directory, --listen and --relay-cert are required")
set_tests_properties(relay/cli_refuses_plain_non_loopback PROPERTIES
                     PASS_REGULAR_EXPRESSION "without TLS")
set_tests_properties(relay/cli_bad_number PROPERTIES
                     PASS_REGULAR_EXPRESSION "--max-frame: expected a whole number")

# TLS: wss:// and https:// with --tls-cert/--tls-key (needs the openssl and curl tools; skipped without).
add_executable(relay_mkpki ${CMAKE_CURRENT_LIST_DIR}/support/mkpki.c)
target_link_libraries(relay_mkpki PRIVATE vtest_relay_support vcore)
add_test(NAME relay/tls COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/relay/tls.sh
         $<TARGET_FILE:valise-relay> $<TARGET_FILE:relay_mkpki>)
set_tests_properties(relay/tls PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60 LABELS relay)

# Attachments (issue 13 item 2): the test runs the relay's --print-audit-key and valise-audit verify.
if(TARGET relay_test_attach AND TARGET valise-audit)
  target_compile_definitions(relay_test_attach PRIVATE
    VALISE_RELAY_BIN="$<TARGET_FILE:valise-relay>"
    VALISE_AUDIT_BIN="$<TARGET_FILE:valise-audit>")
  add_dependencies(relay_test_attach valise-audit)
endif()

# Operators (issue 15): the restore drill also runs the officer's valise-audit.
if(TARGET relay_test_ops AND TARGET valise-audit)
  target_compile_definitions(relay_test_ops PRIVATE
    VALISE_RELAY_BIN="$<TARGET_FILE:valise-relay>"
    VALISE_AUDIT_BIN="$<TARGET_FILE:valise-audit>")
  add_dependencies(relay_test_ops valise-audit)
endif()

# test_memory gives its relay a slow disk through the fault injector.
target_compile_definitions(relay_test_memory PRIVATE
  VALISE_FAULTINJECT="$<TARGET_FILE:faultinject>")
add_dependencies(relay_test_memory faultinject)
target_compile_definitions(relay_test_lane PRIVATE
  VALISE_FAULTINJECT="$<TARGET_FILE:faultinject>")
add_dependencies(relay_test_lane faultinject)
