ricochet_unit_test(test_rc_frame SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_frame.c LIBS ricochet_peer)
ricochet_unit_test(test_rc_peer SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_peer.c LIBS ricochet_peer)
