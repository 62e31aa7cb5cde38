ricochet_script_test(raft_cluster LABEL integration TIMEOUT 900
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_raft_cluster.py)
