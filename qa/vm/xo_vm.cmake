# xo_vm_test(): register a CTest test that runs a program inside the kernel VM
# (qa/vm/xo-vm: QEMU TCG + Debian's stock kernel, for kTLS and TC flower).
#
# Include this file from the top-level CMakeLists.txt before add_subdirectory(common)
# so every folder can call xo_vm_test(); qa/vm/CMakeLists.txt includes it too.
#
# xo_vm_test(NAME
#            TARGET <executable target> | PROGRAM <file>   # what runs in the guest
#            [ARGS <arg>...]                               # its arguments
#            [MODULES <module>...]                         # default: xo-vm's list
#            [FILES <path>...]                             # extra files, guest cwd /xo/files
#            [LABELS <label>...] [TIMEOUT s])
#
# The CTest test is called vm.<NAME>, carries the labels plus "vm", holds RESOURCE_LOCK
# xo_vm (one VM at a time per ctest run) and reports "Skipped" when xo-vm exits 77 (no
# QEMU or no kernel package; xo-vm says why on stderr). A GoogleTest binary runs whole:
# pass --gtest_filter=... in ARGS to pick cases.
include_guard(GLOBAL)

set(XO_VM_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/xo-vm" CACHE INTERNAL "qa/vm/xo-vm")
set(XO_VM_CACHE "" CACHE PATH
    "Cache folder of the kernel VM (unpacked kernel, initramfs); empty: <source>/build/vm-cache")

function(xo_vm_test name)
  cmake_parse_arguments(V "" "TARGET;PROGRAM;TIMEOUT" "ARGS;MODULES;FILES;LABELS" ${ARGN})
  if(XO_FUZZ_ONLY)
    return()
  endif()
  if(V_TARGET)
    set(program "$<TARGET_FILE:${V_TARGET}>")
  elseif(V_PROGRAM)
    set(program "${V_PROGRAM}")
  else()
    message(FATAL_ERROR "xo_vm_test(${name}): TARGET or PROGRAM is required")
  endif()
  if(NOT V_TIMEOUT)
    set(V_TIMEOUT 300)
  endif()
  # xo-vm's own timeout fires first, so a hung guest is reported with its console.
  math(EXPR vm_timeout "${V_TIMEOUT} - 20")

  set(cmd "${XO_VM_SCRIPT}" run --timeout ${vm_timeout})
  if(V_MODULES)
    list(JOIN V_MODULES " " modules)
    list(APPEND cmd --modules "${modules}")
  endif()
  foreach(f IN LISTS V_FILES)
    list(APPEND cmd --file "${f}")
  endforeach()
  list(APPEND cmd -- "${program}" ${V_ARGS})

  add_test(NAME vm.${name} COMMAND ${cmd})
  # One property per call: a list-valued LABELS would be flattened into the call.
  set_tests_properties(vm.${name} PROPERTIES LABELS "vm;${V_LABELS}")
  set_tests_properties(vm.${name} PROPERTIES RESOURCE_LOCK xo_vm SKIP_RETURN_CODE 77
                                             TIMEOUT ${V_TIMEOUT})
  if(XO_VM_CACHE)
    set_tests_properties(vm.${name} PROPERTIES ENVIRONMENT "XO_VM_CACHE=${XO_VM_CACHE}")
  endif()
endfunction()
