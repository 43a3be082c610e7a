# Finds the headers that c10d's ProcessGroupNCCL.hpp includes, for src/train/process_group.cpp's
# NCCL backend: nccl.h (the torch wheel's nvidia-nccl package ships it beside libnccl.so.2, which
# libtorch_cuda loads) and the CUDA runtime's (the CUDA toolkit's include directory). The NCCL
# code itself is in libtorch_cuda. Defines NCCL_INCLUDE_DIRS. HALO_TORCH_SITE: the site-packages
# folder that holds torch (and nvidia/nccl); NCCL_ROOT: another NCCL installation.
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${NCCL_ROOT}/include ${HALO_TORCH_SITE}/nvidia/nccl/include)
find_package(CUDAToolkit QUIET)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(NCCLHeaders REQUIRED_VARS NCCL_INCLUDE_DIR CUDAToolkit_INCLUDE_DIRS)
if(NCCLHeaders_FOUND)
  set(NCCL_INCLUDE_DIRS ${NCCL_INCLUDE_DIR} ${CUDAToolkit_INCLUDE_DIRS})
endif()
