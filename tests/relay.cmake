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
  target_link_libraries(relay_${name} PRIVATE vtest_relay_support vcore PkgConfig::CMOCKA)
  add_dependencies(relay_${name} valise-relay)
  add_test(NAME relay/${name} COMMAND relay_${name})
  set_tests_properties(relay/${name} PROPERTIES TIMEOUT 180 LABELS relay)
endforeach()
