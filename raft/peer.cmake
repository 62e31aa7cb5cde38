# The peer channel between nodes: framing codec (rc_frame) and the
# authenticated TCP channel on libuv (rc_peer). See docs/PEER.md.
add_library(ricochet_peer STATIC rc_frame.c rc_peer.c)
target_link_libraries(ricochet_peer PUBLIC ricochet_proto ricochet_base PkgConfig::LIBUV PkgConfig::OPENSSL)
