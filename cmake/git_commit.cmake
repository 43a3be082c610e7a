# Writes OUTPUT, a header defining HALO_GIT_COMMIT as `git describe --always --dirty` of
# SOURCE_DIR; outside a git checkout (the GPU machine gets a copy of the tree) the environment
# variable HALO_COMMIT at build time, else "unknown". The file is rewritten only when the text
# changes, so only what includes it recompiles. Run with cmake -P at every build.
execute_process(COMMAND git -C "${SOURCE_DIR}" describe --always --dirty
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  if(DEFINED ENV{HALO_COMMIT})
    set(commit "$ENV{HALO_COMMIT}")
  else()
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
