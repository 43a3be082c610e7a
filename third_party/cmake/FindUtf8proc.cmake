# Finds utf8proc (Unicode NFC normalization) from Debian's libutf8proc-dev.
# Defines the imported target Utf8proc::utf8proc.
find_path(UTF8PROC_INCLUDE_DIR utf8proc.h HINTS ${UTF8PROC_ROOT}/usr/include)
find_library(UTF8PROC_LIBRARY NAMES utf8proc libutf8proc.so.2 libutf8proc.so.3
             HINTS ${UTF8PROC_ROOT}/usr/lib/x86_64-linux-gnu)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Utf8proc REQUIRED_VARS UTF8PROC_LIBRARY UTF8PROC_INCLUDE_DIR)
if(Utf8proc_FOUND AND NOT TARGET Utf8proc::utf8proc)
  add_library(Utf8proc::utf8proc UNKNOWN IMPORTED)
  set_target_properties(Utf8proc::utf8proc PROPERTIES IMPORTED_LOCATION "${UTF8PROC_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${UTF8PROC_INCLUDE_DIR}")
endif()
