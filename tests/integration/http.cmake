# Contract test of ricochetctl against a fake node's HTTP API (canned JSON in
# the shapes docs/CLI.md promises): parsing, printing, exit codes, errors.
add_executable(http_fake_node ${CMAKE_CURRENT_LIST_DIR}/http_fake_node.c)
target_link_libraries(http_fake_node PRIVATE ricochet_http)
ricochet_script_test(ctl_contract LABEL integration TIMEOUT 300
  COMMAND /bin/bash ${CMAKE_CURRENT_LIST_DIR}/ctl_contract.sh $<TARGET_FILE:http_fake_node>)
add_dependencies(http_fake_node ricochetctl)
