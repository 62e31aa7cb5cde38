ricochet_script_test(raft_cluster LABEL integration TIMEOUT 900
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_raft_cluster.py)
# Membership changes on a running cluster: a node joins (raft.join) and is
# made a voter by `ricochetctl members sync`, another is removed.
ricochet_script_test(members LABEL integration TIMEOUT 600
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_members.py)
