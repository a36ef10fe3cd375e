# Engine fuzz targets (included by tests/fuzz/CMakeLists.txt when LF_FUZZ is
# ON and the compiler is clang). Each links lf_engine_base.
foreach(target fuzz_safetensors fuzz_torchzip fuzz_tflite fuzz_gguf fuzz_t5_tokenizer)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/${target}.c)
    add_executable(${target} ${CMAKE_CURRENT_LIST_DIR}/${target}.c)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${target} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${target} PRIVATE lf_engine_base)
  endif()
endforeach()
