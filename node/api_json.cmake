# Checks of API request bodies that fuzz targets drive without a node:
# the member table of members/sync and the engagement report.
add_library(ricochet_api_json STATIC rc_members_json.c rc_engagement_json.c)
target_link_libraries(ricochet_api_json PUBLIC ricochet_raft PkgConfig::JANSSON)
