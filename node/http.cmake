add_library(ricochet_http STATIC http_api.c)
target_link_libraries(ricochet_http PUBLIC ricochet_base PkgConfig::H2O PkgConfig::LIBUV PkgConfig::OPENSSL PkgConfig::JANSSON)
