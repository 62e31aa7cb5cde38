ricochet_unit_test(test_dsn SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_dsn.c LIBS ricochet_dsn ricochet_bounce)
