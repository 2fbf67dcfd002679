# Client integration tests (issue 4): the real valise-relay on a free loopback
# port with a temporary data directory, the real valise and valise-keys
# binaries, real LMDB on both sides.
add_test(NAME client/e2e COMMAND ${CMAKE_CURRENT_LIST_DIR}/client/client_e2e.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(client/e2e PROPERTIES TIMEOUT 180 LABELS client)

# A client device for the integration tests written in C (tests/support/clientside.c).
add_library(vtest_client_support STATIC ${CMAKE_CURRENT_LIST_DIR}/support/clientside.c)
target_link_libraries(vtest_client_support PUBLIC vtest_relay_support valise_client vcore)

# A relay restored from a backup: the sender resubmits what it acknowledged after it (issue 15).
add_test(NAME client/restore COMMAND ${CMAKE_CURRENT_LIST_DIR}/client/client_restore.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(client/restore PROPERTIES TIMEOUT 180 LABELS client)

# 1,000 messages both ways through the real relay, at the library level.
add_executable(client_test_bulk ${CMAKE_CURRENT_LIST_DIR}/client/test_bulk.c)
target_link_libraries(client_test_bulk PRIVATE vtest_client_support vtest_relay_support valise_client vcore
                      PkgConfig::CMOCKA)
add_dependencies(client_test_bulk valise-relay)
add_test(NAME client/bulk COMMAND client_test_bulk)
set_tests_properties(client/bulk PROPERTIES TIMEOUT 180 LABELS client)

# Syncs killed at a spread of moments lose and duplicate nothing.
add_test(NAME client/interrupt COMMAND ${CMAKE_CURRENT_LIST_DIR}/client/client_interrupt.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(client/interrupt PROPERTIES TIMEOUT 180 LABELS client)

# A coerced relay serving an expired directory (issue 11, item 4): the
# device's clock is moved with the test-only LD_PRELOAD shim fakeclock.
add_test(NAME client/freshness COMMAND ${CMAKE_CURRENT_LIST_DIR}/client/client_freshness.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>
         $<TARGET_FILE:fakeclock>)
set_tests_properties(client/freshness PROPERTIES TIMEOUT 180 LABELS client
                     ENVIRONMENT "${VALISE_FAULT_ENV}")

# Message ids are the sender's choice (issue 11, item 2): an insider reusing a
# circular's id, a prekey message naming an unknown one-time prekey, and one
# replayed after the session it set up was evicted.
add_executable(client_test_msgid ${CMAKE_CURRENT_LIST_DIR}/client/test_msgid.c)
target_link_libraries(client_test_msgid PRIVATE vtest_client_support vtest_relay_support valise_client vcore
                      PkgConfig::CMOCKA)
add_dependencies(client_test_msgid valise-relay)
add_test(NAME client/msgid COMMAND client_test_msgid)
set_tests_properties(client/msgid PROPERTIES TIMEOUT 180 LABELS client)

# The client authenticates only to the relay it was enrolled with; TLS channel binding.
add_executable(client_test_relay_identity ${CMAKE_CURRENT_LIST_DIR}/client/test_relay_identity.c)
target_link_libraries(client_test_relay_identity PRIVATE vtest_relay_support valise_client vcore
                      PkgConfig::CMOCKA)
add_dependencies(client_test_relay_identity valise-relay)
add_test(NAME client/relay_identity COMMAND client_test_relay_identity)
set_tests_properties(client/relay_identity PROPERTIES TIMEOUT 180 LABELS client)

# A post on a bad link (issue 13): the link emulator (tests/support/linkemu.c)
# between the post's device and the real relay: 9,600 bit/s, 1 s round trip,
# cut 5 s every 30 s. About 2 minutes; VALISE_LONG=1 a larger backlog.
add_executable(client_test_badlink ${CMAKE_CURRENT_LIST_DIR}/client/test_badlink.c
               ${CMAKE_CURRENT_LIST_DIR}/support/linkemu.c)
target_link_libraries(client_test_badlink PRIVATE vtest_client_support vtest_relay_support valise_client vcore
                      PkgConfig::CMOCKA pthread)
add_dependencies(client_test_badlink valise-relay valise)
add_test(NAME client/badlink COMMAND client_test_badlink)
# "slow": run in the release pass only (scripts/test.sh; --long runs it under ASan too).
# "link": through the link emulator, bound by the emulated link's clock, not the CPU:
# scripts/test.sh runs these beside the rest of the release pass.
set_tests_properties(client/badlink PROPERTIES TIMEOUT 1800 LABELS "client;slow;link")
# The directory of a large organisation at a post (issue 13 items 1 and 4):
# 10,000 devices over 512 kbit/s, 1 s round trip, cut 5 s every 30 s, resumed
# in pieces; then one device added and one revoked cost the post a few hundred
# bytes each (a delta). The same at 9,600 bit/s is "slow"; 10,000 devices there
# only with VALISE_LONG=1 (scripts/test.sh --long, about 40 minutes), else 400.
# Both "slow" (release pass only; under ASan with --long); the 9,600 bit/s one
# also "long": scripts/test.sh runs it only with --long (the default run's time).
add_test(NAME client/directory_link COMMAND client_test_badlink directory)
set_tests_properties(client/directory_link PROPERTIES TIMEOUT 900 LABELS "client;slow;link")
add_test(NAME client/directory_slow_link COMMAND client_test_badlink directory-slow)
set_tests_properties(client/directory_slow_link PROPERTIES TIMEOUT 4800 LABELS "client;slow;long;link")
# An attachment over the post's own link (9,600 bit/s, 1 s round trip, cut 5 s
# every 30 s): 48 KiB up from the post, about 90 s; 1 MiB each way with
# VALISE_LONG=1 (about half an hour each way: 32 minutes up and 32 down measured). It arrives intact, resumed, on
# at most the cuts + 2 connections, and a FLASH queued during the upload goes
# before it ends; a resume that finds every chunk stored says complete.
# "slow": the release pass only (ASan with --long).
add_test(NAME client/attachment_slow_link COMMAND client_test_badlink attachment-slow)
set_tests_properties(client/attachment_slow_link PROPERTIES TIMEOUT 5400 LABELS "client;slow;link")
# `valise run` on the bad link: it stops within a second or two of SIGTERM in
# the middle of a step (keeping the directory pieces it had), and its backoff
# resets once a connection got through.
add_test(NAME client/run_badlink COMMAND client_test_badlink run $<TARGET_FILE:valise>)
set_tests_properties(client/run_badlink PROPERTIES TIMEOUT 600 LABELS "client;link")

# What the diplomat sees and types at the edges (issue 12): terminal-safe
# output, relay URLs, compose, several recipients, unknown addresses, errors.
add_test(NAME client/edges COMMAND ${CMAKE_CURRENT_LIST_DIR}/client/client_edges.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(client/edges PROPERTIES TIMEOUT 300 LABELS client)

# Several recipients per message (issue 12, item 6).
add_test(NAME client/recipients COMMAND ${CMAKE_CURRENT_LIST_DIR}/client/client_recipients.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(client/recipients PROPERTIES TIMEOUT 180 LABELS client)

# Bytes on a post's link per message, receipt and sync (issue 13 item 3):
# run by scripts/bench.sh (BENCHMARKS.md); here it must complete, every
# message and receipt through (byte counts are reported, never asserted).
add_executable(client_bench_overhead ${CMAKE_CURRENT_LIST_DIR}/client/bench_overhead.c
               ${CMAKE_CURRENT_LIST_DIR}/support/linkemu.c)
target_link_libraries(client_bench_overhead PRIVATE vtest_client_support vtest_relay_support valise_client vcore pthread)
add_dependencies(client_bench_overhead valise-relay)
add_test(NAME client/overhead COMMAND client_bench_overhead)
# "slow": the release pass only (ASan with --long); the figures come from bench.sh.
set_tests_properties(client/overhead PROPERTIES TIMEOUT 300 LABELS "client;slow;link")

# Receipts that travel together (issue 13 item 3).
add_executable(client_test_receipts ${CMAKE_CURRENT_LIST_DIR}/client/test_receipts.c)
target_link_libraries(client_test_receipts PRIVATE vtest_client_support vtest_relay_support valise_client vcore
                      PkgConfig::CMOCKA)
add_dependencies(client_test_receipts valise-relay)
add_test(NAME client/receipts COMMAND client_test_receipts)
set_tests_properties(client/receipts PROPERTIES TIMEOUT 180 LABELS client)

# Attachments (issue 13 item 2): send --attach, read lists them, save checks
# the signed hash; refusals at send and save; the relay deletes them once done.
add_test(NAME client/attach COMMAND ${CMAKE_CURRENT_LIST_DIR}/client/client_attach.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(client/attach PROPERTIES TIMEOUT 180 LABELS client)

# FLASH text never waits behind an attachment's download (issue 13 item 2).
add_executable(client_test_attach_flash ${CMAKE_CURRENT_LIST_DIR}/client/test_attach_flash.c)
target_link_libraries(client_test_attach_flash PRIVATE vtest_client_support PkgConfig::CMOCKA)
add_dependencies(client_test_attach_flash valise-relay)
add_test(NAME client/attach_flash COMMAND client_test_attach_flash)
set_tests_properties(client/attach_flash PROPERTIES TIMEOUT 180 LABELS client)

# Attachment housekeeping (issue 13 item 2): upload states kept across a cut,
# finished records cleaned up, partial downloads of expired attachments
# deleted once, the start-up sweep of what a crash leaves in HOME/attach.
add_executable(client_test_attach_house ${CMAKE_CURRENT_LIST_DIR}/client/test_attach_house.c)
target_link_libraries(client_test_attach_house PRIVATE vtest_client_support vtest_relay_support valise_client vcore
                      PkgConfig::CMOCKA)
add_dependencies(client_test_attach_house valise-relay)
add_test(NAME client/attach_house COMMAND client_test_attach_house)
set_tests_properties(client/attach_house PROPERTIES TIMEOUT 300 LABELS client)
