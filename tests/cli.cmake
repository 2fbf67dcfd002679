# Command-line tests: the real binaries, as IT staff and diplomats run them.
add_test(NAME cli/keys COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/keys_cli.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise>)
add_test(NAME lint/style COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/lint.sh ${CMAKE_SOURCE_DIR})
# Every test THREAT_MODEL.md and docs/adversarial.md cite exists (issue 6).
add_test(NAME lint/threat_model_tests
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/doc_tests.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
# Core dumps off and not dumpable in every program that holds keys (lib/harden.h).
add_test(NAME cli/harden COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/harden.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(cli/harden PROPERTIES TIMEOUT 120)
