# Engine fuzz targets (included by tests/fuzz/CMakeLists.txt when LF_FUZZ is
# ON and the compiler is clang). Each links lf_engine_base.
foreach(target fuzz_safetensors fuzz_torchzip fuzz_tflite fuzz_gguf)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/${target}.c)
    add_executable(${target} ${CMAKE_CURRENT_LIST_DIR}/${target}.c)
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${target} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${target} PRIVATE lf_engine_base)
  endif()
endforeach()
# The T5 tokenizer's sources compiled in (coverage instrumentation for libFuzzer).
add_executable(fuzz_t5_tokenizer ${CMAKE_CURRENT_LIST_DIR}/fuzz_t5_tokenizer.c
  ${PROJECT_SOURCE_DIR}/engine/text/lf_t5_tokenizer.c ${PROJECT_SOURCE_DIR}/engine/loaders/lf_strmap.c
  ${PROJECT_SOURCE_DIR}/common/lf_b64.c ${PROJECT_SOURCE_DIR}/common/lf_error.c)
target_include_directories(fuzz_t5_tokenizer PRIVATE ${PROJECT_SOURCE_DIR}/common
  ${PROJECT_SOURCE_DIR}/engine/text ${PROJECT_SOURCE_DIR}/engine/loaders)
target_compile_options(fuzz_t5_tokenizer PRIVATE -fsanitize=fuzzer,address,undefined)
target_link_options(fuzz_t5_tokenizer PRIVATE -fsanitize=fuzzer,address,undefined)
target_link_libraries(fuzz_t5_tokenizer PRIVATE PkgConfig::JANSSON)
