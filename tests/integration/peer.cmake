# The peer channel of real ricochetd processes, driven by a hand-written
# client (docs/PEER.md). Serial: it uses 127.0.0.51-53 and 127.0.0.59.
ricochet_script_test(peer_channel LABEL integration TIMEOUT 300 SERIAL
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_peer_channel.py)
