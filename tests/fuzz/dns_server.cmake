# libFuzzer target of the authoritative responder: query parser + answer path.
ricochet_fuzz_target(fuzz_dns_query SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_dns_query.c
                     LIBS ricochet_dns_server PkgConfig::LDNS CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/dns_query)
# Raw TCP bytes into the responder over loopback on a real loop (framing,
# pipelining, teardown).
ricochet_fuzz_target(fuzz_dns_tcp SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_dns_tcp.c
                     LIBS ricochet_dns_server PkgConfig::LDNS CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/dns_tcp
                     SECONDS 30)
