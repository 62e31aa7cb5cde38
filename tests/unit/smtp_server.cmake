ricochet_unit_test(test_smtp_session SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_smtp_session.c LIBS ricochet_smtp_server)
ricochet_unit_test(test_smtp_tls SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_smtp_tls.c LIBS ricochet_smtp_server PkgConfig::OPENSSL)
