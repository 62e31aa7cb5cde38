ricochet_unit_test(test_bounce SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bounce.c LIBS ricochet_bounce)
ricochet_unit_test(test_bounce_text SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bounce_text.c LIBS ricochet_bounce)
