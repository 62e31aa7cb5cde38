# Outbound delivery (issue 4) of a 3-node cluster on 127.0.7.1-3 against real
# peers started by the test on 127.0.7.x: NSD (MX of the test zone),
# smtp-sink, the scripted aiosmtpd server, a real private Postfix that
# bounces asynchronously to the VERP path (issue 6), an aiosmtpd mailbox for
# the DSNs. Every status path with its history, DSN, lost_in_space, open and
# click tracking (per-recipient copies, the /t/ endpoint), kill -9
# of the leader during 200 deliveries and a planned transfer. Serial: it
# takes fixed addresses and a Postfix instance. Needs root for Postfix.
ricochet_script_test(egress_e2e LABEL integration TIMEOUT 900 SERIAL
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_egress_e2e.py)
