# contrib/install-paths.cmake - run by `cmake --install` and cpack (after
# the other install rules): installs the systemd unit and the config file
# with the paths of the install prefix, known only at install time (cpack
# installs with /usr whatever prefix the build was configured with).
#   prefix /usr:   /usr/sbin/milter-nexthop, /etc/milter-nexthop.conf
#   prefix P:      P/sbin/milter-nexthop,    P/etc/milter-nexthop.conf
# The unit's ExecStart*/ExecReload name both. Needs NEXTHOP_SOURCE_DIR and
# NEXTHOP_BINARY_DIR (set by the top-level CMakeLists.txt).
# Must not: overwrite an existing config file, or write anything outside
# DESTDIR + prefix (and DESTDIR/etc for /usr) but a scratch file it removes.
string(REGEX REPLACE "(.)/+$" "\\1" nexthop_prefix "${CMAKE_INSTALL_PREFIX}")
if(nexthop_prefix STREQUAL "/usr")
  set(nexthop_etc /etc)
else()
  set(nexthop_etc "${nexthop_prefix}/etc")
endif()

# the unit, with this prefix's binary and config
file(READ "${NEXTHOP_SOURCE_DIR}/contrib/milter-nexthop.service" nexthop_unit)
string(REPLACE "/usr/sbin/milter-nexthop" "${nexthop_prefix}/sbin/milter-nexthop"
       nexthop_unit "${nexthop_unit}")
string(REPLACE "/etc/milter-nexthop.conf" "${nexthop_etc}/milter-nexthop.conf"
       nexthop_unit "${nexthop_unit}")
string(RANDOM LENGTH 12 nexthop_tag)
set(nexthop_scratch "${NEXTHOP_BINARY_DIR}/milter-nexthop.service.${nexthop_tag}")
file(WRITE "${nexthop_scratch}" "${nexthop_unit}")
file(INSTALL DESTINATION "${nexthop_prefix}/lib/systemd/system" TYPE FILE
     FILES "${nexthop_scratch}" RENAME milter-nexthop.service
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(REMOVE "${nexthop_scratch}")

# a minimal working config, kept if one is there
if(EXISTS "$ENV{DESTDIR}${nexthop_etc}/milter-nexthop.conf")
  message(STATUS "Keeping: $ENV{DESTDIR}${nexthop_etc}/milter-nexthop.conf")
else()
  file(INSTALL DESTINATION "${nexthop_etc}" TYPE FILE
       FILES "${NEXTHOP_SOURCE_DIR}/contrib/debian/milter-nexthop.conf"
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
