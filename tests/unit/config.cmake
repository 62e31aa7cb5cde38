ricochet_unit_test(test_rc_config SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rc_config.c LIBS ricochet_config)
