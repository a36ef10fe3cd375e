# The store's tests, against a real redis-server (tests/support lf_testredis).
# Included from tests/common/CMakeLists.txt; owned by the store's author.
if(NOT TARGET lf_testsupport)
  add_subdirectory(${CMAKE_SOURCE_DIR}/tests/support ${CMAKE_BINARY_DIR}/tests/support)
endif()
add_executable(test_common_store ${CMAKE_CURRENT_LIST_DIR}/test_store.c)
target_link_libraries(test_common_store PRIVATE lf_common lf_testsupport PkgConfig::CMOCKA
  Threads::Threads)
add_test(NAME test_common_store COMMAND test_common_store)
set_tests_properties(test_common_store PROPERTIES LABELS integration TIMEOUT 120)

# lf_store with an external image store (lf_blobstore's directory backend) and the backend alone.
add_executable(test_common_store_blobs ${CMAKE_CURRENT_LIST_DIR}/test_store_blobs.c)
target_link_libraries(test_common_store_blobs PRIVATE lf_common lf_testsupport PkgConfig::CMOCKA
  Threads::Threads)
add_test(NAME test_common_store_blobs COMMAND test_common_store_blobs)
set_tests_properties(test_common_store_blobs PROPERTIES LABELS integration TIMEOUT 120)
