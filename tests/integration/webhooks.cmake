# Webhooks: every status change POSTed, signed, to a receiver written the
# documented way; retries, failover, replicated acknowledgements, filter.
ricochet_script_test(webhooks LABEL integration TIMEOUT 600
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_webhooks.py)
