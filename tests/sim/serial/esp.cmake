# The ESP ROM loader model (model_esp.c, built into serialsim by the model
# glob) inflates with zlib; and the esptool runner end to end through the
# real libserialport: mpfarm run on an ESP32 behind a simulated CP2102
# (/dev/ttyUSB0): a bootloader/partition-table/app set and a merged image,
# checked against the model's dumped flash, a flash with a dropped reply and
# a corrupted frame that recovers, and the REPL smoke test after the hard
# reset (the app console bridged to an mpsim board).
target_link_libraries(serialsim PRIVATE PkgConfig::ZLIB)
add_test(NAME sim.esptool
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_esptool.sh $<TARGET_FILE:serialsim>
                 $<TARGET_FILE:mpfarm> $<TARGET_FILE:mpsim> ${CMAKE_SOURCE_DIR}
                 ${CMAKE_CURRENT_BINARY_DIR}/work-esptool)
set_tests_properties(sim.esptool PROPERTIES LABELS integration TIMEOUT 300 SKIP_RETURN_CODE 77)
