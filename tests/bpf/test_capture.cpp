// SPDX-License-Identifier: MIT
// xthrottle capture (issue 14): the data path samples the packets whose
// verdict and rule a capture asks for, at most its sampling rate (exact,
// so a flood cannot become a second flood), and stops by itself when its
// reader stops renewing it. Through the real object with the settable
// clock, read back through the perf buffers as the CLI reads them.
#include <gtest/gtest.h>

#include <vector>

#include "capture.h"
#include "packet.h"
#include "program.h"
#include "rules.h"

namespace xt {
namespace {

using test::kHz;
using test::kSec;
using test::Packet;
using test::Program;

class Capture : public Program {
 protected:
  void SetUp() override {
    Program::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    load();
    auto reader = CaptureReader::open(*state_, [this](const CaptureSample& s) {
      metas_.push_back(s.meta);
      bytes_.emplace_back(s.bytes.begin(), s.bytes.end());
    });
    ASSERT_TRUE(reader.has_value()) << reader.error().message;
    reader_.emplace(std::move(*reader));
  }
  // Starts a capture of `reasons` at `per_second` samples (burst the same).
  void start(uint32_t reasons, uint64_t per_second, uint32_t rule = XT_CAPTURE_ANY_RULE, uint32_t snaplen = 1514) {
    State::CaptureSettings s;
    s.reasons = reasons;
    s.rule = rule;
    s.snaplen = snaplen;
    s.limit = make_limit(per_second, kHz, per_second, kHz, "rate").value();
    ASSERT_TRUE(state_->start_capture(s).has_value());
  }
  size_t samples() {
    while (reader_->poll(0).value() > 0) {
    }
    return metas_.size();
  }
  std::optional<CaptureReader> reader_;
  std::vector<xt_capture_meta> metas_;
  std::vector<std::vector<uint8_t>> bytes_;
};

TEST_F(Capture, DropsAreSampledWithTheirVerdictRuleAndBytes) {
  rule("198.18.0.0/15", "10/s", 2);
  start(default_capture_reasons(), 1000);
  const auto frame = Packet().ipv4("198.18.0.9").build();
  EXPECT_EQ(passed(frame, 5), 2);
  ASSERT_EQ(samples(), 3u) << "the three drops, not the two that passed";
  EXPECT_EQ(metas_[0].reason, XT_DROP_LIMIT);
  EXPECT_EQ(metas_[0].rule_id, 0u);
  EXPECT_EQ(metas_[0].len, frame.size());
  EXPECT_EQ(bytes_[0], frame) << "the frame as it arrived";
  EXPECT_EQ(counter(XT_CAPTURED), 3u);
}

// A SYN a rule's budget refused is answered with a proof (--verify tcp, the
// default): XDP_TX, counted as a new_source drop. Such SYNs, most of a SYN
// flood, were never sampled: by the time the verdict was known, the frame
// was the SYN-ACK. They are sampled as they came, marked as answered.
TEST_F(Capture, ASynAnsweredWithAProofIsSampledAsItCame) {
  ASSERT_NO_FATAL_FAILURE(on_one_cpu());  // the proofs' rate is shared among the CPUs
  rule("0.0.0.0/0", "100/s", std::nullopt, [](RuleSpec& s) { s.new_rate = *parse_rate("1/hour"); });
  ASSERT_EQ(run(Packet().ipv4("198.19.255.1", "198.18.0.2").build(), 0), XDP_PASS) << "the budget spent";
  start(1u << XT_DROP_NEW_SOURCE, 1000);
  const auto syn = Packet().ipv4("198.18.7.1", "198.18.0.2").tcp(10).flags(0x02).ports(40000, 80).seq(1000).build();
  EXPECT_EQ(run(syn, 0), XDP_TX);
  EXPECT_EQ(counter(XT_DROP_NEW_SOURCE), 1u);
  EXPECT_EQ(counter(XT_PROOFS_SENT), 1u) << "one proof, its budget taken once";
  ASSERT_EQ(samples(), 1u);
  EXPECT_EQ(metas_[0].reason, XT_DROP_NEW_SOURCE);
  EXPECT_EQ(metas_[0].redirected, XT_CAPTURE_PROVED);
  EXPECT_EQ(bytes_[0], syn) << "the SYN, not its answer";
  const auto j = capture_json(1, CaptureSample{metas_[0], bytes_[0]}, 0, "0.0.0.0/0");
  EXPECT_EQ(j["proved"], true);
  EXPECT_EQ(j["redirected"], false);
  EXPECT_NE(capture_line(j).find("(answered with a proof: SYN-ACK)"), std::string::npos) << capture_line(j);

  const auto udp = Packet().ipv4("198.18.7.2", "198.18.0.2").build();
  EXPECT_EQ(run(udp, 0), XDP_DROP) << "no proof for UDP";
  ASSERT_EQ(samples(), 2u) << "sampled once, as before";
  EXPECT_EQ(metas_[1].redirected, 0);
}

// 100 drops in one tick with a sampling rate of 10 a second (burst 10):
// exactly 10 samples, the rest counted as not taken; a second later, 10
// more.
TEST_F(Capture, TheSamplingRateIsExact) {
  rule("198.18.0.0/15", "1/s", 1);
  start(1u << XT_DROP_LIMIT, 10);
  const auto frame = Packet().ipv4("198.18.0.9").build();
  for (int i = 0; i < 100; i++) run(frame, 0);
  EXPECT_EQ(samples(), 10u);
  EXPECT_EQ(counter(XT_CAPTURE_SUPPRESSED), 89u) << "99 drops, 10 taken";
  for (int i = 0; i < 100; i++) run(frame, kSec / 2);
  EXPECT_EQ(samples(), 15u) << "half a second refills five";
}

TEST_F(Capture, OnlyTheChosenReasonsAndRule) {
  rule("198.18.0.0/24", std::nullopt, std::nullopt, [](RuleSpec& s) { s.action = XT_ACT_DENY; });
  rule("198.19.0.0/16", "10/s", 1);
  const uint32_t deny_id = 0;
  start(1u << XT_DROP_LIMIT, 1000);
  const auto denied = Packet().ipv4("198.18.0.9").build(), limited = Packet().ipv4("198.19.0.9").build();
  run(denied, 0);
  run(limited, 0);
  run(limited, 0);
  ASSERT_EQ(samples(), 1u) << "over_limit only";
  EXPECT_EQ(metas_[0].reason, XT_DROP_LIMIT);
  ASSERT_TRUE(state_->start_capture({.reasons = default_capture_reasons(),
                                     .rule = deny_id,
                                     .snaplen = 20,
                                     .limit = make_limit(1000, kHz, 1000, kHz, "rate").value()})
                  .has_value());
  run(limited, 0);
  run(denied, 0);
  ASSERT_EQ(samples(), 2u) << "the deny rule's only";
  EXPECT_EQ(metas_[1].reason, XT_DROP_DENY);
  EXPECT_EQ(metas_[1].caplen, 20u) << "cut to the snap length";
  EXPECT_EQ(bytes_[1].size(), 20u);
}

// A reader that stops renewing (killed) lets the capture lapse: after
// XT_CAPTURE_LEASE_SECONDS nothing is sampled, and a stopped one at once.
TEST_F(Capture, ACaptureLapsesWithoutItsReaderAndStopsAtOnce) {
  rule("198.18.0.0/15", "1/s", 1);
  start(default_capture_reasons(), 1000);
  const auto frame = Packet().ipv4("198.18.0.9").build();
  run(frame, 0);
  run(frame, 0);
  EXPECT_EQ(samples(), 1u);
  run(frame, XT_CAPTURE_LEASE_SECONDS * kSec + 1);
  run(frame, XT_CAPTURE_LEASE_SECONDS * kSec + 1);
  EXPECT_EQ(samples(), 1u) << "lapsed";
  EXPECT_EQ(state_->config().value().capture_reasons, 0u) << "the data path ended it: drops stop looking";
  start(default_capture_reasons(), 1000);
  state_->stop_capture();
  for (int i = 0; i < 5; i++) run(frame, XT_CAPTURE_LEASE_SECONDS * kSec + 1);
  EXPECT_EQ(samples(), 1u) << "stopped";
  EXPECT_EQ(counter(XT_CAPTURE_SUPPRESSED), 0u) << "nobody capturing: the budget is not even read";
}

}  // namespace
}  // namespace xt
