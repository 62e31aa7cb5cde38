# DSN builder (smtp/dsn.h): structure parsed back with GMime, hostile fields,
# and a round trip through our own bounce analyser.
ricochet_unit_test(test_dsn SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_dsn.c
                   LIBS ricochet_dsn ricochet_bounce PkgConfig::GMIME)
