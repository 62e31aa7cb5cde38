# Classifier accuracy over the labelled corpus ../shared/corpus/bounces
# (reason >= 0.95, hard/soft >= 0.98; prints the per-reason confusion).
ricochet_script_test(bounce_corpus LABEL integration
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/integration/bounce_accuracy.py
          $<TARGET_FILE:ricochet-classify>)
