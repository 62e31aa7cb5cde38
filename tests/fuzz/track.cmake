# Messages into track_rewrite() and request paths into track_parse().
ricochet_fuzz_target(fuzz_track SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_track.c
                     LIBS ricochet_track CORPUS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/track)
