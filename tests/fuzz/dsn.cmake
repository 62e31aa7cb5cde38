# Hostile fields and originals into dsn_build() (smtp/dsn.h).
ricochet_fuzz_target(fuzz_dsn SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_dsn.c
                     LIBS ricochet_dsn CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/dsn)
