# node/http_api.c on a real libuv loop, libcurl and raw sockets as clients.
find_package(Threads REQUIRED)
ricochet_unit_test(test_http_api
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_http_api.c
  LIBS ricochet_http PkgConfig::CURL Threads::Threads)
