# Fault injection (tests/fault): an LD_PRELOAD library fails the N-th
# allocation, write or fsync. It forwards to the next allocator in symbol
# order, so in the sanitizer build the loops run on ASan's allocator and
# LeakSanitizer reports what a failure path leaked. The library itself is
# built without sanitizers (it is preloaded ahead of libasan, hence
# verify_asan_link_order=0 in VALISE_FAULT_ENV). The library and
# VALISE_FAULT_ENV are defined in tests/CMakeLists.txt, ahead of every group.
add_test(NAME fault/keys COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fault/keys_fault.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:faultinject>)
set_tests_properties(fault/keys PROPERTIES ENVIRONMENT "${VALISE_FAULT_ENV}")
# Attachment housekeeping under crashes (issue 13 item 2): `valise sync` killed
# before each of its fsyncs, renames and unlinks in turn, downloading and
# uploading, then synced again: nothing left dangling (tests/fault/attach_crash.sh).
add_test(NAME fault/attach_crash COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fault/attach_crash.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>
         $<TARGET_FILE:faultinject>)
# release pass only (label slow): 24 syncs, each with an Argon2id unlock
set_tests_properties(fault/attach_crash PROPERTIES ENVIRONMENT "${VALISE_FAULT_ENV}" TIMEOUT 900
                     LABELS slow)
