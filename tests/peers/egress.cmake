# Egress against real peers: NSD serving test zones on loopback, Postfix's
# smtp-sink as an accepting MX, a scripted aiosmtpd server for 4xx/5xx,
# drops, stalls and STARTTLS. egress_send drives the libraries.
add_executable(egress_send ${CMAKE_CURRENT_LIST_DIR}/egress_send.c)
target_link_libraries(egress_send PRIVATE ricochet_smtp_client ricochet_dns_resolver ricochet_verp)
ricochet_script_test(egress_mx COMMAND ${CMAKE_CURRENT_LIST_DIR}/egress_mx.sh LABEL peers)
ricochet_script_test(egress_smtp COMMAND ${CMAKE_CURRENT_LIST_DIR}/egress_smtp.sh LABEL peers)
