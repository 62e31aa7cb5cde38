# Unit tests of the egress protocol code (smtp/ client side, VERP, dns/ resolver).
ricochet_unit_test(test_smtp_reply SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_smtp_reply.c
                   LIBS ricochet_smtp_client)
ricochet_unit_test(test_verp SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_verp.c LIBS ricochet_verp)
ricochet_unit_test(test_dns_resolver SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_dns_resolver.c
                   LIBS ricochet_dns_resolver)
ricochet_unit_test(test_smtp_client SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_smtp_client.c
                   LIBS ricochet_smtp_client)
