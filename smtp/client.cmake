# Egress protocol code: the SMTP client (delivery transaction state machine
# and its reply parser) and the VERP codec.
add_library(ricochet_verp STATIC ${CMAKE_CURRENT_LIST_DIR}/verp.c)
target_link_libraries(ricochet_verp PUBLIC PkgConfig::OPENSSL)

add_library(ricochet_smtp_client STATIC
  ${CMAKE_CURRENT_LIST_DIR}/smtp_reply.c
  ${CMAKE_CURRENT_LIST_DIR}/smtp_client.c)
target_link_libraries(ricochet_smtp_client PUBLIC PkgConfig::LIBUV PkgConfig::OPENSSL ricochet_base)
