ricochet_unit_test(test_rc_log SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_log.c LIBS ricochet_base)
ricochet_unit_test(test_rc_utf8 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_utf8.c LIBS ricochet_base)
