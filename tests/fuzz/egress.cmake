# libFuzzer targets of the egress protocol code.
ricochet_fuzz_target(fuzz_smtp_reply SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_smtp_reply.c
                     LIBS ricochet_smtp_client CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/smtp_reply)
ricochet_fuzz_target(fuzz_dns_response SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_dns_response.c
                     LIBS ricochet_dns_resolver CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/dns_response)
