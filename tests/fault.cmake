# Fault injection (tests/fault): an LD_PRELOAD library fails the N-th
# allocation, write or fsync. Interposing malloc cannot coexist with the
# sanitizers' allocator, so these run in the release build only.
if(NOT VALISE_SANITIZE)
  add_library(faultinject MODULE ${CMAKE_CURRENT_SOURCE_DIR}/fault/faultinject.c)
  target_compile_options(faultinject PRIVATE -Wno-missing-prototypes -U_FORTIFY_SOURCE)
  target_link_libraries(faultinject PRIVATE dl)
  add_test(NAME fault/keys COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fault/keys_fault.sh
           $<TARGET_FILE:valise-keys> $<TARGET_FILE:valise> $<TARGET_FILE:faultinject>)
endif()
