# Bounce, complaint and auto-reply analysis + the one reply classifier
# (smtp/bounce.h). GMime/GLib stay private to this library.
add_library(ricochet_bounce STATIC
  bounce.c bounce_lhost.c bounce_reason.c bounce_rhost.c bounce_dsn.c bounce_mime.c bounce_ndr.c bounce_util.c)
target_link_libraries(ricochet_bounce PRIVATE PkgConfig::GMIME PkgConfig::JANSSON
                      PUBLIC ricochet_base)
