# Debian packages, man pages and systemd units (issue 15 items 1-3).
foreach(entry valise:1 valise-keys:8 valise-relay:8 valise-audit:1)
  string(REPLACE ":" ";" parts ${entry})
  list(GET parts 0 prog)
  list(GET parts 1 sec)
  add_test(NAME packaging/man_${prog}
           COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/packaging/mancheck.py $<TARGET_FILE:${prog}>
                   ${CMAKE_BINARY_DIR}/man/${prog}.${sec})
  set_tests_properties(packaging/man_${prog} PROPERTIES
                       LABELS packaging ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endforeach()
add_test(NAME packaging/packages
         COMMAND sh ${CMAKE_SOURCE_DIR}/tests/packaging/packages.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
set_tests_properties(packaging/packages PROPERTIES TIMEOUT 300 LABELS packaging)
