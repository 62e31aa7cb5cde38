# Open and click tracking (smtp/track.h): signed URLs and the recipient's
# copy of a message with its HTML rewritten. GMime, gumbo and GLib stay
# private to it.
add_library(ricochet_track STATIC ${CMAKE_CURRENT_LIST_DIR}/track.c)
target_link_libraries(ricochet_track PRIVATE PkgConfig::GMIME PkgConfig::GUMBO PUBLIC PkgConfig::OPENSSL)
