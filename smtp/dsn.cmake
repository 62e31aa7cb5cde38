# Delivery status notifications that we send (smtp/dsn.h): the builder only;
# node/ decides when and injects them. GMime/GLib stay private to it.
add_library(ricochet_dsn STATIC ${CMAKE_CURRENT_LIST_DIR}/dsn.c)
target_link_libraries(ricochet_dsn PRIVATE PkgConfig::GMIME)
