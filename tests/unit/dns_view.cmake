ricochet_unit_test(test_rc_dns_view SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_dns_view.c LIBS ricochet_node)
