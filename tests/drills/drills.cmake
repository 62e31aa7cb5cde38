# Drills in network namespaces (root only: CI runs as root). SERIAL: they
# take both CPUs in bursts and their timing matters more than others'.
ricochet_script_test(site_cut LABEL drills SERIAL TIMEOUT 600
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_site_cut.py)
ricochet_script_test(cluster_netns LABEL drills SERIAL TIMEOUT 600
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/cluster_netns.sh)
