# Bounce and complaint intake (node/rc_bounce.c) and GET /v1/bounces
# (node/rc_api_bounces.c): part of ricochet_node, with the bounce analysis
# and the VERP codec.
target_sources(ricochet_node PRIVATE ${CMAKE_CURRENT_LIST_DIR}/rc_bounce.c ${CMAKE_CURRENT_LIST_DIR}/rc_api_bounces.c)
target_link_libraries(ricochet_node PUBLIC ricochet_bounce ricochet_verp)
