# The desk (issue 14) in Debian's chromium driven by Playwright: two desks
# and the real relay on loopback (tests/desk/desk_e2e.sh). Screenshots of
# the run land in the build directory (desk-shots/); docs/desk/ holds a copy.
add_test(NAME desk/browser COMMAND ${CMAKE_CURRENT_LIST_DIR}/desk/desk_e2e.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>
         ${CMAKE_BINARY_DIR}/desk-shots)
# "slow": the browser run once, in the release pass (the desk's C code runs under ASan in
# desk/session and unit/test_desk); scripts/test.sh --long runs it under ASan too.
set_tests_properties(desk/browser PROPERTIES TIMEOUT 300 LABELS "desk;slow")

# Issue 12 item 14: the other verbs use a running desk's unlocked session.
add_test(NAME desk/session COMMAND ${CMAKE_CURRENT_LIST_DIR}/desk/session.sh
         $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:valise-relay>)
set_tests_properties(desk/session PROPERTIES TIMEOUT 180 LABELS desk)
