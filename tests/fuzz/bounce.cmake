# Whole mails into bounce_analyse(). The replay takes the committed seeds and,
# when it exists, the labelled corpus beside the source tree.
set(_bounce_corpus ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/bounce)
ricochet_fuzz_target(fuzz_bounce SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_bounce.c
                     LIBS ricochet_bounce CORPUS ${_bounce_corpus})
if(NOT RICOCHET_FUZZ AND EXISTS ${CMAKE_SOURCE_DIR}/../shared/corpus/bounces)
  add_test(NAME fuzz.fuzz_bounce.replay_corpus
           COMMAND fuzz_bounce ${CMAKE_SOURCE_DIR}/../shared/corpus/bounces)
  set_tests_properties(fuzz.fuzz_bounce.replay_corpus PROPERTIES LABELS fuzz-replay TIMEOUT 300)
endif()
