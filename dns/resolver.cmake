# Asynchronous MX resolver used by egress (ldns wire format over uv_udp/uv_tcp).
add_library(ricochet_dns_resolver STATIC ${CMAKE_CURRENT_LIST_DIR}/dns_resolver.c)
target_link_libraries(ricochet_dns_resolver PUBLIC PkgConfig::LIBUV PkgConfig::LDNS ricochet_base)
