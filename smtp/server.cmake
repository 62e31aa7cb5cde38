add_library(ricochet_smtp_server STATIC smtp_addr.c smtp_auth.c smtp_session.c smtp_server.c smtp_tls.c)
target_link_libraries(ricochet_smtp_server PUBLIC ricochet_base PkgConfig::LIBUV PkgConfig::OPENSSL)
