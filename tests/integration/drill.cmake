ricochet_script_test(drill LABEL integration TIMEOUT 600
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_drill.py)
