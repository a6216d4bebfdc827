# Bootloader entry and `mpfarm detect` through the serial harness (included
# from CMakeLists.txt in this directory, after serialsim is defined).
add_executable(entry_test ${CMAKE_CURRENT_SOURCE_DIR}/entry_test.c)
target_link_libraries(entry_test PRIVATE farmcore)
set_target_properties(entry_test PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/sim/serial)

add_test(NAME sim.detect
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_detect.sh $<TARGET_FILE:serialsim>
                 $<TARGET_FILE:mpfarm> $<TARGET_FILE:mpsim> ${CMAKE_SOURCE_DIR}
                 ${CMAKE_CURRENT_BINARY_DIR}/work-detect)
set_tests_properties(sim.detect PROPERTIES LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)

add_test(NAME sim.touch1200
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_touch1200.sh $<TARGET_FILE:serialsim>
                 $<TARGET_FILE:entry_test> $<TARGET_FILE:mpsim> ${CMAKE_SOURCE_DIR}
                 ${CMAKE_CURRENT_BINARY_DIR}/work-touch1200)
set_tests_properties(sim.touch1200 PROPERTIES LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)
