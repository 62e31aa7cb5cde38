ricochet_script_test(smtp_ingress LABEL integration TIMEOUT 900
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_smtp_ingress.py)
