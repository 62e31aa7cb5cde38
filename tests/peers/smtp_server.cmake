# The SMTP server library against real clients: swaks (plain, STARTTLS,
# AUTH over STARTTLS, pipelining, oversize, relay policy, limits) and
# Postfix's smtp-source, talking to smtp_testd (the library standalone).
add_executable(smtp_testd ${CMAKE_CURRENT_LIST_DIR}/smtp_testd.c)
target_link_libraries(smtp_testd PRIVATE ricochet_smtp_server)
ricochet_script_test(smtp_server_swaks COMMAND ${CMAKE_CURRENT_LIST_DIR}/smtp_server_swaks.sh LABEL peers)
