# The OpenMV runner end to end: mpfarm flashes a simulated OpenMV Cam (model
# "openmv") through its USBDBG reset and legacy CDC bootloader, then runs the
# smoke suite on the app bridged to an mpsim board. Included from
# CMakeLists.txt in this directory (only when umockdev is present).
add_test(NAME sim.serial_openmv
         COMMAND bash ${SSIM_DIR}/test_openmv.sh $<TARGET_FILE:serialsim> $<TARGET_FILE:mpfarm>
                 $<TARGET_FILE:mpsim> ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/work-openmv)
set_tests_properties(sim.serial_openmv PROPERTIES LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)
