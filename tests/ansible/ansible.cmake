# ansible/site.yml deployed twice into five network-namespace boxes (2+2+1),
# then checked from inside the boxes (leader, DNS MX, SMTP 250). Root only;
# needs ansible, nftables, swaks, dig (scripts/deps.sh --with-tests).
ricochet_script_test(ansible_site
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/ansible/site_test.py
  LABEL integration TIMEOUT 900 SERIAL)
