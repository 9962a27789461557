// SPDX-License-Identifier: MIT
// The xthrottle command line (README, "Usage"; man xthrottle): CLI11 wiring.
// Each command, its options and its handler live in a file of their own
// (attach.cpp, rule.cpp, stats.cpp, ...); every command is a fresh process
// on the pinned state.
//
// Exit codes: 0 done; 1 the system refused; 2 bad usage or input; 3 `status
// --check` found xthrottle not fully protecting; 4 protecting, but the live
// rules are not what the applied rules file says.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "cli.h"
#include "object.h"

int main(int argc, char** argv) {
  using namespace xt::cli;
  CLI::App app{"xthrottle: per-source packet rate limiting at the driver (XDP)", "xthrottle"};
  app.require_subcommand(1);
  app.fallthrough();  // --pin-dir and -v work after the command too
  Globals g;
  g.pin_dir = xt::default_pin_dir();
  app.add_option("--pin-dir", g.pin_dir, "Where the state is pinned (bpffs)")
      ->envname("XTHROTTLE_PIN_DIR")
      ->capture_default_str();
  app.add_flag("-v,--verbose", g.verbose, "Show libbpf's and libxdp's own messages");
  app.set_version_flag("--version", "xthrottle " XT_VERSION " (ABI " + std::to_string(XT_ABI_VERSION) + ")");
  // Logging is set before any command runs (the commands run as CLI11
  // finishes parsing, from their callbacks).
  app.parse_complete_callback([&g] { xt::set_library_logging(g.verbose); });

  int rc = 2;
  add_attach_commands(app, g, rc);
  add_status_command(app, g, rc);
  add_rule_commands(app, g, rc);
  add_stats_commands(app, g, rc);
  add_apply_command(app, g, rc);
  add_events_command(app, g, rc);
  add_capture_command(app, g, rc);
  add_ban_commands(app, g, rc);
  add_blocklist_commands(app, g, rc);
  add_serve_command(app, g, rc);
  add_snapshot_commands(app, g, rc);
  add_replay_command(app, g, rc);
  add_recommend_command(app, g, rc);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports an unknown command as a missing one; name the culprit.
    const auto rest = app.remaining();
    if (app.get_subcommands().empty() && !rest.empty()) {
      // Every command there is, as registered: a list written out by hand
      // fell behind the commands added since.
      std::string names;
      for (const CLI::App* c : app.get_subcommands([](const CLI::App*) { return true; }))
        names += (names.empty() ? "" : ", ") + c->get_name();
      std::cerr << "xthrottle: unknown command '" << rest.front() << "' (commands: " << names << ")\n";
    } else
      std::cerr << "xthrottle: " << e.what() << "\n";
    std::cerr << "Run with --help for more information.\n";
    return 2;
  }
  return rc;
}
