// SPDX-License-Identifier: MIT
// xthrottle events [--json]
#include <iostream>
#include <memory>

#include "cli.h"
#include "events.h"
#include "format.h"

namespace xt::cli {
namespace {

int run_events(const Globals& g, bool json) {
  auto state = State::open(g.pin_dir);
  if (!state) return fail(state.error());
  auto lock = ReaderLock::acquire(g.pin_dir, XT_MAP_EVENTS_CLI, "`xthrottle events`");
  if (!lock) return fail(lock.error());
  auto reader = EventReader::open(*state, state->events_cli_fd(), [&](const nlohmann::json& e, const std::string& line) {
    if (json)
      std::cout << json_text(e) << std::endl;
    else
      std::cout << line << std::endl;
  });
  if (!reader) return fail(reader.error());
  reader->discard();  // what piled up before we looked is old news
  install_stop_signals();
  while (!g_stop && output_ok())
    if (auto n = reader->poll(250); !n) return fail(n.error());
  return 0;
}

}  // namespace

void add_events_command(CLI::App& app, const Globals& g, int& rc) {
  auto json = std::make_shared<bool>(false);
  auto* events = app.add_subcommand("events", "Follow sources being throttled and released, budgets saturating");
  events->add_flag("--json", *json, "One JSON object per line");
  events->callback([&g, &rc, json] { rc = run_events(g, *json); });
}

}  // namespace xt::cli
