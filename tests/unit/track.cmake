ricochet_unit_test(test_track SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_track.c LIBS ricochet_track)
