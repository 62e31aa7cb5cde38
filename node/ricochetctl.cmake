add_executable(ricochetctl ricochetctl.c ctl_recover.c)
target_link_libraries(ricochetctl PRIVATE ricochet_config ricochet_raft ricochet_smtp_server PkgConfig::CURL PkgConfig::JANSSON)
set_target_properties(ricochetctl PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
