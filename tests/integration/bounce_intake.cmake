# Bounce and complaint intake on a 3-node cluster (127.0.5.x) with swaks:
# DSN -> bounced + suppressed + resend rejected; delivery report + ARF ->
# complained + suppressed; forged, unmapped and auto-reply change nothing.
ricochet_script_test(bounce_intake LABEL integration TIMEOUT 600
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_bounce_intake.py)
