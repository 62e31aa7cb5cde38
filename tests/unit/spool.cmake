ricochet_unit_test(test_rc_spool SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_spool.c ${CMAKE_SOURCE_DIR}/node/rc_spool.c
                   LIBS ricochet_fsm)
