# CUDA routing kernels (issue 5); included from model/CMakeLists.txt when nvcc was found.
#   brainage_routing_kernels  the raw-pointer kernels (no LibTorch). Built whenever CUDA is
#                             on, so they compile in CI without a GPU; the standalone kernel
#                             test (tests/model) links only this.
#   routing_cuda.cpp          the LibTorch glue; joins brainage_model only when LibTorch
#                             itself has CUDA (PyTorch's bundled LibTorch on a GPU machine;
#                             Debian's 1.13 is CPU-only), and then route() uses the kernels
#                             for CUDA tensors (BRAINAGE_CUDA_ROUTING, see model/routing.cpp).
add_library(brainage_routing_kernels STATIC ${CMAKE_CURRENT_LIST_DIR}/routing_kernels.cu)
target_include_directories(brainage_routing_kernels PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(brainage_routing_kernels PUBLIC CUDA::cudart)
set_target_properties(brainage_routing_kernels PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
target_compile_options(brainage_routing_kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall>)

# LibTorch with CUDA: TorchConfig adds TORCH_CUDA_LIBRARIES (c10_cuda), Caffe2Config sets
# CAFFE2_USE_CUDA and defines the torch_cuda target.
set(BRAINAGE_TORCH_HAS_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES OR CAFFE2_USE_CUDA)
  set(BRAINAGE_TORCH_HAS_CUDA ON)
  target_sources(brainage_model PRIVATE ${CMAKE_CURRENT_LIST_DIR}/routing_cuda.cpp)
  target_link_libraries(brainage_model PUBLIC brainage_routing_kernels)
  target_compile_definitions(brainage_model PUBLIC BRAINAGE_CUDA_ROUTING=1)
endif()
message(STATUS "brainage: CUDA routing kernels compiled; route() uses them on CUDA tensors: "
               "${BRAINAGE_TORCH_HAS_CUDA} (needs LibTorch with CUDA)")
