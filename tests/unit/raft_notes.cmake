ricochet_unit_test(test_rc_notes SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_notes.c LIBS ricochet_fsm)
