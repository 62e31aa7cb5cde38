# The replicated state machine: entry framing, the FSM, the libraft glue.
add_library(ricochet_fsm STATIC rc_entry.c rc_map.c rc_fsm.c rc_notes.c)
target_link_libraries(ricochet_fsm PUBLIC ricochet_proto ricochet_base PkgConfig::RAFT PkgConfig::OPENSSL)
add_library(ricochet_raft STATIC rc_transport.c rc_raft.c rc_members.c)
target_link_libraries(ricochet_raft PUBLIC ricochet_fsm PkgConfig::LIBUV)
add_library(ricochet_forward STATIC rc_forward.c)
target_link_libraries(ricochet_forward PUBLIC ricochet_raft ricochet_peer)
