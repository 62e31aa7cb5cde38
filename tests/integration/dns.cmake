ricochet_script_test(dns_cluster LABEL integration TIMEOUT 600
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_dns_cluster.py)
