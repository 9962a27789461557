// SPDX-License-Identifier: MIT
// What a permission error tells the operator (error.h): what xthrottle
// needs, unless it holds that already, when it must not send root to get
// root but say what else refuses (the kernel's verifier answers EACCES for
// a program it cannot prove safe).
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "error.h"

namespace {

TEST(Errors, TheEffectiveCapabilitiesAreReadFromProcStatus) {
  const std::string root = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n"
                           "CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
  EXPECT_EQ(xt::effective_caps(root), 0x1ffffffffffull);
  EXPECT_EQ(xt::effective_caps(root) & xt::kNeededCaps, xt::kNeededCaps);
  // CAP_NET_ADMIN and CAP_SYS_ADMIN without CAP_BPF: not enough.
  const std::string no_bpf = "CapEff:\t0000000000201000\n";
  EXPECT_EQ(xt::effective_caps(no_bpf), 0x201000ull);
  EXPECT_NE(xt::effective_caps(no_bpf) & xt::kNeededCaps, xt::kNeededCaps);
  EXPECT_EQ(xt::effective_caps("CapEff:\t0000000000000000\n"), 0u);
  EXPECT_EQ(xt::effective_caps("Name:\tx\n"), 0u) << "no CapEff line: nothing held";
}

TEST(Errors, APermissionErrorSaysWhatIsMissingOrWhatElseRefused) {
  const std::string without = xt::permission_hint(false);
  EXPECT_NE(without.find("needs root"), std::string::npos) << without;
  const std::string with = xt::permission_hint(true);
  EXPECT_EQ(with.find("needs root"), std::string::npos) << "root told to get root: " << with;
  EXPECT_NE(with.find("verifier"), std::string::npos) << with;
  EXPECT_NE(with.find("-v"), std::string::npos) << "where the verifier's log is: " << with;
}

// The message as this process gets it: holding the capabilities or not.
TEST(Errors, ThisProcessGetsTheHintThatFitsIt) {
  const std::string message = xt::system_error("cannot load the program", EACCES).error().message;
  EXPECT_EQ(message.rfind("cannot load the program: Permission denied (", 0), 0u) << message;
  EXPECT_NE(message.find(xt::permission_hint(xt::holds_needed_caps())), std::string::npos) << message;
  EXPECT_EQ(xt::system_error("cannot read", ENOENT).error().message, "cannot read: No such file or directory");
}

}  // namespace
