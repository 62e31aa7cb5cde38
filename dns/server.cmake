# Authoritative responder for the cluster's zone: the zone view (dns_zone.c),
# the answer builder (dns_answer.c), RRL (dns_rrl.c), UDP/TCP listeners
# (dns_server.c). node/ links it and feeds it views.
add_library(ricochet_dns_server STATIC
  ${CMAKE_CURRENT_LIST_DIR}/dns_zone.c
  ${CMAKE_CURRENT_LIST_DIR}/dns_answer.c
  ${CMAKE_CURRENT_LIST_DIR}/dns_rrl.c
  ${CMAKE_CURRENT_LIST_DIR}/dns_server.c)
target_link_libraries(ricochet_dns_server PUBLIC PkgConfig::LIBUV PkgConfig::LDNS ricochet_base)
