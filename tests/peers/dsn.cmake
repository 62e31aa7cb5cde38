# DSNs that we send, read by a real peer: Sisimai (libsisimai-perl) must find
# the recipient, reason and status we meant. dsn_write builds them.
add_executable(dsn_write ${CMAKE_CURRENT_LIST_DIR}/dsn_write.c)
target_link_libraries(dsn_write PRIVATE ricochet_dsn)
ricochet_script_test(dsn_sisimai COMMAND ${CMAKE_CURRENT_LIST_DIR}/dsn_sisimai.sh LABEL peers TIMEOUT 300)
