# `classify` of ricochetctl (node/ctl_classify.c) needs the bounce library.
# ricochetctl.cmake compiles ctl_classify.c; the link is added once the whole
# node/ directory is read (ricochetctl.cmake sorts after this fragment).
# ricochet-classify is the same command as a stand-alone executable.
add_executable(ricochet-classify ctl_classify.c ctl_classify_main.c)
target_link_libraries(ricochet-classify PRIVATE ${RICOCHET_ALLOCATOR} ricochet_bounce PkgConfig::JANSSON)
set_target_properties(ricochet-classify PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
cmake_language(DEFER CALL target_link_libraries ricochetctl PRIVATE ricochet_bounce)
