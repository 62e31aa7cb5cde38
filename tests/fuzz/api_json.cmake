# The body of POST /v1/cluster/members/sync: jansson, the table check, and
# the planner run on what passes (the plan must reach the table).
ricochet_fuzz_target(fuzz_members_sync
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_members_sync.c
  LIBS ricochet_api_json
  CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/members_sync)

# The body of POST /v1/messages/ID/engagement: jansson and the check.
ricochet_fuzz_target(fuzz_engagement
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_engagement.c
  LIBS ricochet_api_json
  CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/engagement)
