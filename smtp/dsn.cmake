# Delivery status notifications for senders (smtp/dsn.h): GMime builds the
# MIME structure; GMime/GLib stay private to this library.
add_library(ricochet_dsn STATIC ${CMAKE_CURRENT_LIST_DIR}/dsn.c)
target_link_libraries(ricochet_dsn PRIVATE PkgConfig::GMIME PUBLIC ricochet_base)
