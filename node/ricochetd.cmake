add_executable(ricochetd ricochetd.c)
target_link_libraries(ricochetd PRIVATE ricochet_base ricochet_proto PkgConfig::LIBUV)
set_target_properties(ricochetd PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
