# Finds Gloo's headers (Debian's libgloo-dev) for src/train/process_group.cpp: the torch wheel
# ships Gloo's code inside libtorch_cpu but not its headers, which ProcessGroupGloo.hpp includes.
# Defines GLOO_INCLUDE_DIR. GLOO_ROOT: an unpacked libgloo-dev (the GPU machine's .device-deps).
find_path(GLOO_INCLUDE_DIR gloo/config.h HINTS ${GLOO_ROOT}/usr/include)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(GlooHeaders REQUIRED_VARS GLOO_INCLUDE_DIR)
