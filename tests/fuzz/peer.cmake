ricochet_fuzz_target(fuzz_peer_frame
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_peer_frame.c
  LIBS ricochet_peer
  CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/peer_frame)
