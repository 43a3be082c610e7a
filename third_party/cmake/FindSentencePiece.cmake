# Finds SentencePiece from Debian's libsentencepiece-dev (no CMake config ships there).
# Defines the imported target SentencePiece::sentencepiece, and SentencePiece::train (the
# trainer, a separate library: the tests train a tiny model) when libsentencepiece_train is found.
find_path(SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h HINTS ${SENTENCEPIECE_ROOT}/usr/include)
find_library(SENTENCEPIECE_LIBRARY NAMES sentencepiece libsentencepiece.so.0
             HINTS ${SENTENCEPIECE_ROOT}/usr/lib/x86_64-linux-gnu)
find_library(SENTENCEPIECE_TRAIN_LIBRARY NAMES sentencepiece_train libsentencepiece_train.so.0
             HINTS ${SENTENCEPIECE_ROOT}/usr/lib/x86_64-linux-gnu)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(SentencePiece REQUIRED_VARS SENTENCEPIECE_LIBRARY SENTENCEPIECE_INCLUDE_DIR)
if(SentencePiece_FOUND AND NOT TARGET SentencePiece::sentencepiece)
  add_library(SentencePiece::sentencepiece UNKNOWN IMPORTED)
  set_target_properties(SentencePiece::sentencepiece PROPERTIES IMPORTED_LOCATION "${SENTENCEPIECE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${SENTENCEPIECE_INCLUDE_DIR}")
endif()
if(SentencePiece_FOUND AND SENTENCEPIECE_TRAIN_LIBRARY AND NOT TARGET SentencePiece::train)
  add_library(SentencePiece::train UNKNOWN IMPORTED)
  set_target_properties(SentencePiece::train PROPERTIES IMPORTED_LOCATION "${SENTENCEPIECE_TRAIN_LIBRARY}"
    INTERFACE_LINK_LIBRARIES SentencePiece::sentencepiece)
endif()
