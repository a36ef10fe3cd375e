# Read by ctest before any test runs (the top directory's TEST_INCLUDE_FILES):
# the environment every test gets unless the caller's says otherwise.
#
# OpenMP threads (oneDNN's, through libgomp) spin between parallel regions by
# default. On a machine shared by tests running side by side (ctest -j, CI,
# other builds) a spinning thread holds a core the working one needs:
# test_engine_pipeline_engine's cache case took 175 s (42 s CPU) against
# 12 s (4 s CPU) with passive waits, side by side at load 22 on 2 cores.
if(NOT DEFINED ENV{OMP_WAIT_POLICY})
  set(ENV{OMP_WAIT_POLICY} passive)
endif()
