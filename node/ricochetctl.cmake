# ricochetctl: operator CLI (main and dispatch in ricochetctl.c, one
# ctl_*.c per command, shared helpers in ctl_http.c and ctl_util.c).
add_executable(ricochetctl
  ricochetctl.c ctl_http.c ctl_util.c
  ctl_cluster.c ctl_message.c ctl_transfer.c ctl_drain.c ctl_suppressions.c ctl_probe.c ctl_passwd.c
  ctl_classify.c ctl_recover.c ctl_drill.c ctl_members.c ctl_webhooks.c)
target_link_libraries(ricochetctl PRIVATE ${RICOCHET_ALLOCATOR} ricochet_config ricochet_raft ricochet_smtp_server
                      PkgConfig::CURL PkgConfig::JANSSON PkgConfig::LDNS)
set_target_properties(ricochetctl PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
