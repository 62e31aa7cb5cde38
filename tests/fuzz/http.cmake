# HTTP/1 bytes from a loopback client into node/http_api.c on a real loop.
ricochet_fuzz_target(fuzz_http_api
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_http_api.c
  LIBS ricochet_http
  CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/http_api
  SECONDS 30)
