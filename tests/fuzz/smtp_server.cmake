ricochet_fuzz_target(fuzz_smtp_session
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_smtp_session.c
  LIBS ricochet_smtp_server
  CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/smtp_session)
