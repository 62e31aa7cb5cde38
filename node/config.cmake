add_library(ricochet_config STATIC rc_config.c)
target_link_libraries(ricochet_config PUBLIC ricochet_base PkgConfig::INIH)
