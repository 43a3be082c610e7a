# Finds SentencePiece from Debian's libsentencepiece-dev (no CMake config ships there).
# Defines the imported target SentencePiece::sentencepiece.
find_path(SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h HINTS ${SENTENCEPIECE_ROOT}/usr/include)
find_library(SENTENCEPIECE_LIBRARY NAMES sentencepiece libsentencepiece.so.0
             HINTS ${SENTENCEPIECE_ROOT}/usr/lib/x86_64-linux-gnu)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(SentencePiece REQUIRED_VARS SENTENCEPIECE_LIBRARY SENTENCEPIECE_INCLUDE_DIR)
if(SentencePiece_FOUND AND NOT TARGET SentencePiece::sentencepiece)
  add_library(SentencePiece::sentencepiece UNKNOWN IMPORTED)
  set_target_properties(SentencePiece::sentencepiece PROPERTIES IMPORTED_LOCATION "${SENTENCEPIECE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${SENTENCEPIECE_INCLUDE_DIR}")
endif()
