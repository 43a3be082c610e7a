# Finds PCRE2 (8-bit code units) from Debian's libpcre2-dev, or from headers and a
# library carried to the GPU machine (PCRE2_ROOT). Defines the imported target PCRE2::8.
find_path(PCRE2_INCLUDE_DIR pcre2.h HINTS ${PCRE2_ROOT}/usr/include)
find_library(PCRE2_LIBRARY NAMES pcre2-8 libpcre2-8.so.0
             HINTS ${PCRE2_ROOT}/usr/lib/x86_64-linux-gnu)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(PCRE2 REQUIRED_VARS PCRE2_LIBRARY PCRE2_INCLUDE_DIR)
if(PCRE2_FOUND AND NOT TARGET PCRE2::8)
  add_library(PCRE2::8 UNKNOWN IMPORTED)
  set_target_properties(PCRE2::8 PROPERTIES IMPORTED_LOCATION "${PCRE2_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${PCRE2_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS "PCRE2_CODE_UNIT_WIDTH=8")
endif()
