ricochet_unit_test(test_rc_entry SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_entry.c LIBS ricochet_fsm)
ricochet_unit_test(test_rc_fsm SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_fsm.c LIBS ricochet_fsm)
ricochet_unit_test(test_rc_transport SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_transport.c LIBS ricochet_raft)
ricochet_unit_test(test_rc_members SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_members.c LIBS ricochet_raft)
