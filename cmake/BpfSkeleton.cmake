# Build a BPF object with clang and wrap it in a bpftool skeleton header, so
# the object is embedded in whatever links the skeleton: no .o is looked up at
# run time.
#
#   xt_bpf_skeleton(<target> <source.bpf.c> [CLANG clang] [NAME name] [DEPENDS files...])
#
# defines an INTERFACE library <target> whose include directory holds
# <name>.skel.h and <name>.bpf.o (name: by default the source's name without
# .bpf.c), compiled with CLANG (by default XT_BPF_CLANG).

# The object that ships is built by clang 14 (Debian 12's default) when it
# is there; the verifier-margin test names the compilers it measures.
find_program(XT_BPF_CLANG NAMES clang-14 clang REQUIRED
  DOC "clang used for the BPF target (clang 14 and 19 are supported)")
find_program(XT_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

# Debian keeps asm/ under the multiarch include directory.
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
  OUTPUT_VARIABLE XT_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT XT_MULTIARCH)
  execute_process(COMMAND gcc -print-multiarch
    OUTPUT_VARIABLE XT_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()

set(XT_BPF_CFLAGS -g -O2 -target bpf -mcpu=v3
  -Wall -Wextra -Werror -Wshadow -Wimplicit-fallthrough
  -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_SOURCE_DIR}/bpf)
if(XT_MULTIARCH)
  list(APPEND XT_BPF_CFLAGS -I/usr/include/${XT_MULTIARCH})
endif()

function(xt_bpf_skeleton target source)
  cmake_parse_arguments(ARG "" "CLANG;NAME" "DEPENDS" ${ARGN})
  get_filename_component(src "${source}" ABSOLUTE)
  get_filename_component(name "${src}" NAME)
  string(REGEX REPLACE "\\.bpf\\.c$" "" stem "${name}")
  if(ARG_NAME)
    set(stem "${ARG_NAME}")
  endif()
  set(clang "${XT_BPF_CLANG}")
  if(ARG_CLANG)
    set(clang "${ARG_CLANG}")
  endif()
  set(outdir "${CMAKE_CURRENT_BINARY_DIR}/${target}")
  set(obj "${outdir}/${stem}.bpf.o")
  set(skel "${outdir}/${stem}.skel.h")
  add_custom_command(
    OUTPUT "${obj}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${outdir}"
    COMMAND ${clang} ${XT_BPF_CFLAGS} -c "${src}" -o "${obj}"
    DEPENDS "${src}" ${ARG_DEPENDS}
    COMMENT "BPF ${name} (${stem}, ${clang})"
    VERBATIM)
  add_custom_command(
    OUTPUT "${skel}"
    COMMAND ${XT_BPFTOOL} gen skeleton "${obj}" name "${stem}" > "${skel}"
    DEPENDS "${obj}"
    COMMENT "BPF skeleton ${stem}.skel.h"
    VERBATIM)
  add_custom_target(${target}_gen DEPENDS "${skel}")
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_gen)
  target_include_directories(${target} INTERFACE "${outdir}")
  set_property(TARGET ${target} PROPERTY XT_BPF_OBJECT "${obj}")
endfunction()
