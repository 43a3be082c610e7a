# Writes OUTPUT, a header defining HALO_GIT_COMMIT: the environment variable HALO_COMMIT at build
# time when set (the GPU machine's copy of the tree may carry a stale .git), else `git describe
# --always --dirty` of SOURCE_DIR, else "unknown". The file is rewritten only when the text
# changes, so only what includes it recompiles. Run with cmake -P at every build.
if(DEFINED ENV{HALO_COMMIT} AND NOT "$ENV{HALO_COMMIT}" STREQUAL "")
  set(commit "$ENV{HALO_COMMIT}")
else()
  execute_process(COMMAND git -C "${SOURCE_DIR}" describe --always --dirty
                  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR commit STREQUAL "")
    set(commit "unknown")
  endif()
endif()
set(text "#define HALO_GIT_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUTPUT}" "${text}")
endif()
