# packaging.cmake - man pages, install layout and Debian packages (issue 15 items 1 and 3).
#
# CPack's DEB generator, not debian/ + dpkg-buildpackage: the four packages are
# components of the one CMake build that the tests already drive, so
# `cpack -G DEB` in a build tree makes them with no second build system, no
# debhelper or devscripts on the build machine, and a test can build and
# install them in seconds (README "Packages").

include(GNUInstallDirs)

# ---- man pages, generated from each program's own --help (scripts/mkman.py) ----
set(VALISE_MAN_PAGES valise:1 valise-keys:8 valise-relay:8 valise-audit:1)
set(VALISE_MAN_FILES)
foreach(entry ${VALISE_MAN_PAGES})
  string(REPLACE ":" ";" parts ${entry})
  list(GET parts 0 prog)
  list(GET parts 1 sec)
  set(page ${CMAKE_BINARY_DIR}/man/${prog}.${sec})
  add_custom_command(OUTPUT ${page}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0 SOURCE_DATE_EPOCH=1767225600
            python3 ${CMAKE_SOURCE_DIR}/scripts/mkman.py $<TARGET_FILE:${prog}> ${sec} ${page}
    DEPENDS ${prog} ${CMAKE_SOURCE_DIR}/scripts/mkman.py
    COMMENT "man page ${prog}(${sec}) from ${prog} --help")
  list(APPEND VALISE_MAN_FILES ${page})
  install(FILES ${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${sec} COMPONENT ${prog})
endforeach()
add_custom_target(man ALL DEPENDS ${VALISE_MAN_FILES})

# ---- what each package installs ----
install(TARGETS valise RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT valise)
install(TARGETS valise-keys RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT valise-keys)
install(TARGETS valise-relay RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT valise-relay)
install(TARGETS valise-audit RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT valise-audit)
# The desk's files (another engineer's work) go to /usr/share/valise/desk.
install(FILES ${CMAKE_SOURCE_DIR}/contrib/desk/README
        DESTINATION ${CMAKE_INSTALL_DATADIR}/valise/desk COMPONENT valise)
install(FILES ${CMAKE_SOURCE_DIR}/contrib/systemd/valise-desk.service
        DESTINATION lib/systemd/user COMPONENT valise)
install(FILES ${CMAKE_SOURCE_DIR}/contrib/systemd/valise-relay.service
              ${CMAKE_SOURCE_DIR}/contrib/systemd/valise-relay-backup.service
              ${CMAKE_SOURCE_DIR}/contrib/systemd/valise-relay-backup.timer
        DESTINATION lib/systemd/system COMPONENT valise-relay)
install(FILES ${CMAKE_SOURCE_DIR}/contrib/systemd/relay.conf
        DESTINATION /etc/valise COMPONENT valise-relay)
foreach(comp valise valise-keys valise-relay valise-audit)
  install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/PROTOCOL.md
                ${CMAKE_SOURCE_DIR}/THREAT_MODEL.md
          DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${comp} COMPONENT ${comp})
endforeach()

# ---- CPack: one .deb per component ----
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME valise)
set(CPACK_PACKAGE_VENDOR "Ministry of Foreign Affairs IT")
set(CPACK_PACKAGE_CONTACT "Valise maintainers <valise@invalid>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL valise valise-keys valise-relay valise-audit)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_VALISE_PACKAGE_NAME valise)
set(CPACK_DEBIAN_VALISE-KEYS_PACKAGE_NAME valise-keys)
set(CPACK_DEBIAN_VALISE-RELAY_PACKAGE_NAME valise-relay)
set(CPACK_DEBIAN_VALISE-AUDIT_PACKAGE_NAME valise-audit)
set(CPACK_COMPONENT_VALISE_DESCRIPTION "Valise client: end-to-end encrypted messaging for diplomats")
set(CPACK_COMPONENT_VALISE-KEYS_DESCRIPTION "Valise IT tool: organisation root, enrolment, directory")
set(CPACK_COMPONENT_VALISE-RELAY_DESCRIPTION "Valise relay: store-and-forward of ciphertext, systemd unit")
set(CPACK_COMPONENT_VALISE-AUDIT_DESCRIPTION "Valise audit: the security officer's log verifier")
set(CPACK_DEBIAN_VALISE-RELAY_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_VALISE-RELAY_PACKAGE_CONTROL_EXTRA
    "${CMAKE_SOURCE_DIR}/contrib/debian/valise-relay/postinst;${CMAKE_SOURCE_DIR}/contrib/debian/valise-relay/postrm;${CMAKE_SOURCE_DIR}/contrib/debian/valise-relay/conffiles")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
