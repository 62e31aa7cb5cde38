# docs/CONFIG.md is generated from the schema table; fail when it is stale.
ricochet_script_test(config_reference_current LABEL unit TIMEOUT 60
  COMMAND sh -c "$<TARGET_FILE:ricochetd> --config-reference | diff -u ${CMAKE_SOURCE_DIR}/docs/CONFIG.md - && echo 'docs/CONFIG.md is current'")
