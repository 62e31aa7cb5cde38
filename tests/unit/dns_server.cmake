# Unit tests of the authoritative responder: zone from views, every case of
# the answer builder, RRL.
ricochet_unit_test(test_dns_server SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_dns_server.c
                   LIBS ricochet_dns_server)
