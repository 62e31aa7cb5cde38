# The authoritative responder against real clients: dig (bind9-dnsutils) and
# kdig (knot-dnsutils) over UDP and TCP against dns_testd, a standalone
# daemon serving a view from a file.
add_executable(dns_testd ${CMAKE_CURRENT_LIST_DIR}/dns_testd.c)
target_link_libraries(dns_testd PRIVATE ricochet_dns_server)
ricochet_script_test(dns_server_clients COMMAND ${CMAKE_CURRENT_LIST_DIR}/dns_server_clients.sh LABEL peers)
ricochet_script_test(dns_server_vs_nsd COMMAND ${CMAKE_CURRENT_LIST_DIR}/dns_server_vs_nsd.sh LABEL peers)
