# Adversarial suite (issue 6, docs/adversarial.md): fault injection on the
# client's and relay's message paths, system-level protocol attacks,
# websocket abuse against a live relay, fuzz regression inputs.

# Fuzz regressions: every fuzz/fuzz_<name>.c linked with a plain-C driver
# that replays fuzz/regressions/<name>/ and fuzz/corpus/<name>/ in the
# ordinary builds (release and ASan+UBSan; libFuzzer only exists with clang).
file(GLOB VALISE_ADV_FUZZERS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/fuzz_*.c)
foreach(src ${VALISE_ADV_FUZZERS})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" short ${name})
  add_executable(replay_${name} ${src} ${CMAKE_CURRENT_LIST_DIR}/adversarial/fuzz_replay.c)
  target_link_libraries(replay_${name} PRIVATE valise_client valise_keys_core vcore)
  # Harnesses discard results with (void), which gcc does not accept for
  # warn_unused_result (clang, the fuzz build's compiler, does).
  target_compile_options(replay_${name} PRIVATE -Wno-unused-result)
  add_test(NAME adversarial/fuzz_replay_${short}
           COMMAND replay_${name} ${CMAKE_SOURCE_DIR}/fuzz/regressions/${short}
                   ${CMAKE_SOURCE_DIR}/fuzz/corpus/${short})
  set_tests_properties(adversarial/fuzz_replay_${short} PROPERTIES TIMEOUT 120 LABELS adversarial)
endforeach()

# Fault injection with the LD_PRELOAD library of tests/fault.cmake; in the
# sanitizer build under LeakSanitizer (VALISE_FAULT_ENV).
add_test(NAME adversarial/client_fault
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/adversarial/client_fault.sh
                 $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>
                 $<TARGET_FILE:faultinject>)
# TIMEOUT covers the full sweep of VALISE_LONG=1 (about 20 min; default about 1 min).
set_tests_properties(adversarial/client_fault PROPERTIES TIMEOUT 3600 LABELS adversarial
                     ENVIRONMENT "${VALISE_FAULT_ENV}")
add_test(NAME adversarial/relay_fault
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/adversarial/relay_fault.sh
                 $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>
                 $<TARGET_FILE:faultinject>)
set_tests_properties(adversarial/relay_fault PROPERTIES TIMEOUT 3600 LABELS adversarial
                     ENVIRONMENT "${VALISE_FAULT_ENV}")

# Websocket abuse against a live relay (RFC 6455 violations, slowloris,
# 1,000 unauthenticated connections, a flood from one device).
add_executable(adversarial_test_wsabuse ${CMAKE_CURRENT_LIST_DIR}/adversarial/test_wsabuse.c)
target_link_libraries(adversarial_test_wsabuse PRIVATE vtest_relay_support vcore PkgConfig::CMOCKA)
add_dependencies(adversarial_test_wsabuse valise-relay)
add_test(NAME adversarial/test_wsabuse COMMAND adversarial_test_wsabuse)
set_tests_properties(adversarial/test_wsabuse PROPERTIES TIMEOUT 180 LABELS adversarial)

# A malicious relay rewrites the sender or recipient id of a queued envelope.
add_executable(adversarial_lmdb_rewrite ${CMAKE_CURRENT_LIST_DIR}/adversarial/lmdb_rewrite.c)
target_link_libraries(adversarial_lmdb_rewrite PRIVATE PkgConfig::LMDB PkgConfig::SODIUM)
add_test(NAME adversarial/relay_rewrite
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/adversarial/relay_rewrite.sh
                 $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>
                 $<TARGET_FILE:adversarial_lmdb_rewrite>)
set_tests_properties(adversarial/relay_rewrite PROPERTIES TIMEOUT 180 LABELS adversarial)

# A client store rolled back to an older copy.
add_test(NAME adversarial/store_rollback
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/adversarial/store_rollback.sh
                 $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(adversarial/store_rollback PROPERTIES TIMEOUT 180 LABELS adversarial)

# Insiders with a certificate for another post or role try to read a post's traffic.
add_test(NAME adversarial/wrong_post
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/adversarial/wrong_post.sh
                 $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>
                 $<TARGET_FILE:adversarial_lmdb_rewrite>)
set_tests_properties(adversarial/wrong_post PROPERTIES TIMEOUT 180 LABELS adversarial)

# Issue 11 item 1: a person is an identity IT assign, not the name a request carries.
add_test(NAME adversarial/person_name
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/adversarial/person_name.sh
                 $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(adversarial/person_name PROPERTIES TIMEOUT 180 LABELS adversarial)

# Issue 11 item 3: a device refuses a relay that does not prove it is the one it enrolled with.
add_test(NAME adversarial/impersonating_relay
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/adversarial/impersonating_relay.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(adversarial/impersonating_relay PROPERTIES TIMEOUT 180 LABELS adversarial)
