# Delivery from the leader against real peers (NSD, smtp-sink, aiosmtpd):
# every status path with its history, DSNs, failover and a planned transfer.
ricochet_script_test(egress LABEL integration TIMEOUT 900
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_egress.py)
